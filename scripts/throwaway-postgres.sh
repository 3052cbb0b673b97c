#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on a free loopback port and prints its DATABASE_URL.
# Installs Debian's postgresql when no server binaries are present. Server settings may follow
# (e.g. -c shared_preload_libraries=pg_stat_statements). Stop it with:
#   scripts/throwaway-postgres.sh stop <dir>
set -euo pipefail

if [ "${1:-}" = "stop" ]; then
  dir=$2
  bin=$(cat "$dir/bindir")
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin=$(find_bin)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "installing PostgreSQL from Debian..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bin=$(find_bin)
fi
id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres

dir=$(mktemp -d /tmp/cloudpay-pg.XXXXXX)
chmod 755 "$dir"
echo "$bin" > "$dir/bindir"
mkdir "$dir/data" "$dir/socket"
chown postgres "$dir" "$dir/data" "$dir/socket"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir/socket -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 $*" start >/dev/null
echo "$dir postgres://postgres@127.0.0.1:$port/postgres"
