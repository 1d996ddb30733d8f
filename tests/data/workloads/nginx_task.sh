#!/bin/sh
# nginx doing its job (tests/tests/debian_daemons.rs): the master starts as root, its worker
# runs as www-data and serves a file to curl, then nginx quits gracefully. Loopback only.
set -eu
conf=/workloads/nginx.conf
nginx -c "$conf" -g 'daemon off;' &
pid=$!
# One pause whether or not the daemon is already up, so that every run makes the same calls
# (a run that never waited would leave `sleep` out of the profile for one that does).
sleep 0.1
tries=0
until body=$(curl -sf http://127.0.0.1:8080/index.html); do
  tries=$((tries + 1))
  [ "$tries" -lt 100 ] || { echo "nginx did not serve" >&2; exit 1; }
  sleep 0.1
done
echo "nginx served: $body"
[ "$body" = "served by nginx" ]
nginx -c "$conf" -s quit
wait "$pid"
echo "nginx stopped"
