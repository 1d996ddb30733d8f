#!/bin/sh
# memcached doing its job (tests/tests/debian_daemons.rs): started as root, it drops to the
# memcache user itself (-u), stores a value and hands it back to a client over loopback TCP
# (bash's /dev/tcp: minbase has no memcached client), then stops on SIGTERM.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0"
set -eu
memcached -u memcache -l 127.0.0.1 -p 11211 -U 0 -t 2 &
pid=$!
# One pause whether or not the daemon is already up, so that every run makes the same calls.
sleep 0.1
tries=0
until exec 3<>/dev/tcp/127.0.0.1/11211; do
  tries=$((tries + 1))
  [ "$tries" -lt 100 ] || { echo "memcached did not answer" >&2; exit 1; }
  sleep 0.1
done 2>/dev/null
printf 'set audited 0 0 6\r\nstored\r\nget audited\r\nquit\r\n' >&3
reply=$(tr -d '\r' <&3)
exec 3>&-
echo "memcached answered: $reply"
[ "$reply" = "$(printf 'STORED\nVALUE audited 0 6\nstored\nEND')" ]
kill -TERM "$pid"
wait "$pid" || [ $? -eq 143 ] || { echo "memcached exited $?" >&2; exit 1; }
echo "memcached stopped"
