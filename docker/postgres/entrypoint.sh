#!/bin/sh
# Starts PostgreSQL on $PGDATA, first creating the cluster if it has none:
# initdb with superuser $POSTGRES_USER (default bnserve) and its password
# (the file $POSTGRES_PASSWORD_FILE, e.g. a compose or Kubernetes secret, or
# $POSTGRES_PASSWORD), then database $POSTGRES_DB (default: the user's name).
# Listens on every address; logins over the network need the password
# (scram-sha-256), the local socket (inside the container) trusts.
# Extra arguments go to postgres (e.g. -c max_connections=200).
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-bnserve}
db=${POSTGRES_DB:-$user}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    password=$(cat "$POSTGRES_PASSWORD_FILE")
  else
    password=${POSTGRES_PASSWORD:-}
  fi
  if [ -z "$password" ]; then
    echo "bnserve-postgres: no cluster in $PGDATA and no password:" \
         "set POSTGRES_PASSWORD_FILE or POSTGRES_PASSWORD" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$password" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' \
    >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\";" |
      postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "bnserve-postgres: created cluster $PGDATA, user $user, database $db"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
