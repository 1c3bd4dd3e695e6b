#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for trying bnserve's shared registry on
# one machine (and for bench/replicas.sh): initdb in DIR, a server on
# 127.0.0.1:PORT with its socket in DIR, trust authentication for local
# connections only, and a database `bnserve`.
#
#   scripts/local_postgres.sh start var/pg 55432   # prints the registry URL
#   bnserve --registry postgresql://bnserve@127.0.0.1:55432/bnserve ...
#   scripts/local_postgres.sh stop var/pg
#
# As root the server runs as the `postgres` system user (initdb refuses
# root), which the postgresql-15 package creates. Durability is off
# (fsync=off): this cluster is for trying things and benchmarks, never data
# that matter.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
command=$1
dir=$(realpath -m "$2")
bin=/usr/lib/postgresql/15/bin
[[ -x $bin/initdb ]] || { echo "$0: no PostgreSQL 15 in $bin: run scripts/setup.sh" >&2; exit 1; }

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $command in
  start)
    [[ $# -eq 3 ]] || usage
    port=$3
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    if [[ ! -f $dir/PG_VERSION ]]; then
      as_owner "$bin/initdb" -D "$dir" -U bnserve --auth=trust -E UTF8 >"$dir.initdb.log"
    fi
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null
    as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U bnserve -d postgres -qAt \
      -c "SELECT 1 FROM pg_database WHERE datname = 'bnserve'" | grep -q 1 ||
      as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U bnserve bnserve
    echo "postgresql://bnserve@127.0.0.1:$port/bnserve"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    ;;
  *) usage ;;
esac
