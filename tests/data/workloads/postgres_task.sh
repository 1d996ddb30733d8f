#!/bin/sh
# PostgreSQL doing its job (tests/tests/debian_daemons.rs): Debian's pg_ctlcluster, run as
# root, starts the cluster as `postgres`; psql (as postgres, through runuser) answers a query
# over the local socket; the cluster stops cleanly. No network but loopback.
set -eu
pg_ctlcluster 15 main start
answer=$(runuser -u postgres -- psql -tAc 'select 6 * 7')
echo "postgres answered: $answer"
[ "$answer" = 42 ]
pg_ctlcluster 15 main stop
echo "postgres stopped"
