#!/bin/sh
# Squid doing its job (tests/tests/debian_daemons.rs): it starts as root and drops to `proxy`,
# refuses a request for a domain outside its allowlist (403), and shuts down cleanly. The
# container has no network but loopback, so nothing leaves the machine.
set -eu
conf=/workloads/squid.conf
squid -f "$conf" -N &
pid=$!
# One pause whether or not the daemon is already up, so that every run makes the same calls
# (a run that never waited would leave `sleep` out of the profile for one that does).
sleep 0.1
tries=0
until curl -s -o /dev/null http://127.0.0.1:3128/; do
  tries=$((tries + 1))
  [ "$tries" -lt 100 ] || { echo "squid did not listen" >&2; exit 1; }
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:3128 http://denied.example.org/)
echo "denied.example.org through squid: HTTP $code"
[ "$code" = 403 ]
squid -f "$conf" -k shutdown
wait "$pid"
echo "squid stopped"
