#!/usr/bin/env bash
# Usage: test/infra/postgres.sh DIR PORT
# A throwaway PostgreSQL 15 for the backup tests: a cluster in DIR/data run by the `postgres` user on
# 127.0.0.1:PORT (socket in DIR), with a database `app` owned by the role `app`, password `app pw`.
# Idempotent: a running cluster is left alone. Stop it with:
#   su postgres -c "/usr/lib/postgresql/15/bin/pg_ctl -D DIR/data stop"
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 DIR PORT" >&2
  exit 2
fi
bin=/usr/lib/postgresql/15/bin
if [ ! -x "$bin/initdb" ]; then
  echo "installing postgresql"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd)
port=$2
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi; }

chown postgres "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  echo "postgres pw" >"$dir/pwfile" && chown postgres "$dir/pwfile" && chmod 600 "$dir/pwfile"
  as_pg "$bin/initdb" -D "$dir/data" -A scram-sha-256 --pwfile="$dir/pwfile" -U postgres >/dev/null
  rm -f "$dir/pwfile"
fi
if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
fi
export PGPASSWORD="postgres pw"
psql=(psql -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qAt)
if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'app'")" != 1 ]; then
  "${psql[@]}" -c "CREATE ROLE app LOGIN PASSWORD 'app pw'" -c "CREATE DATABASE app OWNER app"
fi
echo "postgres ready on 127.0.0.1:$port (database app, role app)"
