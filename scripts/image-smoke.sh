#!/usr/bin/env bash
# What the image's runtime stage holds, checked without a Docker daemon: dist/ plus the production
# dependencies only (npm ci --omit=dev in a scratch directory, as `npm prune --omit=dev` leaves
# the image), each service started as the image starts it (node dist/cli/service.js <name>) and
# asked for health on its plaintext probe port, timed from spawn to SERVING.
#   DATABASE_URL=postgres://... scripts/image-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL (e.g. from scripts/throwaway-postgres.sh)}"
sh scripts/build.sh
node --import tsx scripts/check-runtime-imports.ts
image=$(mktemp -d)
# A database of its own on that server, dropped after (later steps share the server).
server=$DATABASE_URL
sql() { node --input-type=module -e 'import pg from "pg"; const c = new pg.Client({ connectionString: process.argv[1] }); await c.connect(); await c.query(process.argv[2]); await c.end()' "$server" "$1"; }
db=cloudpay_image_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
sql "CREATE DATABASE $db"
trap 'sql "DROP DATABASE IF EXISTS $db WITH (FORCE)"; rm -rf "$image"' EXIT
DATABASE_URL=$(node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.toString())' "$server" "$db")
cp package.json package-lock.json "$image/"
cp -r dist "$image/dist"
(cd "$image" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
test ! -e "$image/node_modules/tsx" && test ! -e "$image/node_modules/typescript" && test ! -e "$image/node_modules/esbuild"
cd "$image"
mkdir -p home
ports=(15051 15052 15053 15054 15055 15056)
services=(account-management payment-management instance-events payment-platform app-service push-relay)
# A probe as the kubelet's: plaintext Health/Check on the probe port, '' then 'liveness'.
cat > probe.mjs <<'JS'
import { credentials } from '@grpc/grpc-js'
import { HealthClient } from './dist/gen/grpc/health/v1/health.js'
const [port, started] = process.argv.slice(2)
const client = new HealthClient(`127.0.0.1:${port}`, credentials.createInsecure(), { 'grpc.initial_reconnect_backoff_ms': 20, 'grpc.max_reconnect_backoff_ms': 50 })
const check = (service) => new Promise((resolve) => client.check({ service }, { deadline: Date.now() + 1000 }, (error, reply) => resolve(error ? -1 : reply.status)))
for (let i = 0; i < 1500; i++) {
  if ((await check('')) === 1 && (await check('liveness')) === 1) {
    console.log(`healthy ${Date.now() - Number(started)} ms after spawn`)
    process.exit(0)
  }
  await new Promise((r) => setTimeout(r, 20))
}
console.log('never healthy'); process.exit(1)
JS
for i in "${!services[@]}"; do
  name=${services[$i]}
  var=$(echo "$name" | tr 'a-z-' 'A-Z_')
  started=$(node -e 'console.log(Date.now())')
  env NODE_ENV=production CLOUDPAY_HOME="$image/home" CLOUDPAY_TRACE_FILE=off DATABASE_URL="$DATABASE_URL" \
    "CLOUDPAY_${var}_ADDR=127.0.0.1:0" "CLOUDPAY_${var}_HEALTH_LISTEN=127.0.0.1:18081" \
    node dist/cli/service.js "$name" >"$image/$name.log" 2>&1 &
  pid=$!
  if ! result=$(node probe.mjs 18081 "$started"); then cat "$image/$name.log"; kill -KILL $pid; exit 1; fi
  echo "node dist/cli/service.js $name: $result, rss $(($(ps -o rss= -p $pid) / 1024)) MiB"
  kill -TERM $pid
  wait $pid
  grep -q '"msg":"stopped"' "$image/$name.log" || { echo "$name did not stop cleanly on SIGTERM"; tail -5 "$image/$name.log"; exit 1; }
done
