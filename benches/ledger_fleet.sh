#!/usr/bin/env bash
# Ledger appends/s through the real binary (`warden ledger append`, receipts printed only once
# durable): embedded SQLite as the baseline, then PostgreSQL with 1 writer process, then
# PostgreSQL with 3 writer processes appending at once to one ledger (one chain, batches
# integrated one at a time under the advisory lock). All three in the same run.
#
#   benches/ledger_fleet.sh [RECORDS_PER_PROCESS]    (default 20000; CONCURRENCY=64 per process)
#
# PostgreSQL: WARDEN_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test); each
# run gets a schema of its own, dropped at the end. Needs psql. Builds the release binary first.
# Wall time includes each process's start (about 20 ms: key, connection, migrations).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20000}"
CONCURRENCY="${CONCURRENCY:-64}"
URL="${WARDEN_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

[ -n "${NO_BUILD:-}" ] || cargo build --release -p warden >&2
BIN=target/release/warden
WORK=$(mktemp -d)
SCHEMAS=()
cleanup() {
  for s in "${SCHEMAS[@]}"; do psql -q "$URL" -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Decision-like payloads of about 200 bytes, distinct per process.
payloads() {
  awk -v n="$N" -v p="$1" 'BEGIN { for (i = 0; i < n; i++)
    printf "{\"decision_id\":\"dec_%d_%d\",\"agent_id\":\"agt-7\",\"action\":\"execute_refund\",\"verdict\":\"allow\",\"amount\":%d,\"payload_hash\":\"sha256:%064d\"}\n", p, i, i % 9000, i }'
}
for p in 0 1 2; do payloads "$p" > "$WORK/payloads.$p"; done
"$BIN" --data-dir "$WORK/keys" keygen --out "$WORK/keys/ledger.key" >/dev/null

new_schema() {
  local s="warden_bench_$$_$1"
  psql -q "$URL" -c "CREATE SCHEMA $s" >/dev/null
  SCHEMAS+=("$s")
  echo "$URL?options=-csearch_path%3D$s"
}

# run LABEL PROCESSES STORE_URL(empty: SQLite)
run() {
  local label=$1 procs=$2 url=$3 start end total=0 p
  local -a pids=()
  start=$(date +%s.%N)
  for ((p = 0; p < procs; p++)); do
    WARDEN_STORE__URL="$url" WARDEN_LEDGER__SIGNING_KEY="$WORK/keys/ledger.key" \
      "$BIN" --data-dir "$WORK/$label.$p" ledger append --kind bench --concurrency "$CONCURRENCY" \
      < "$WORK/payloads.$p" > "$WORK/$label.$p.out" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  for ((p = 0; p < procs; p++)); do total=$((total + $(wc -l < "$WORK/$label.$p.out"))); done
  local checkpoints
  if [ -n "$url" ]; then
    checkpoints=$(psql -At "$url" -c "SELECT count(*) FROM ledger_checkpoints")
  else
    checkpoints=$(WARDEN_LEDGER__SIGNING_KEY="$WORK/keys/ledger.key" "$BIN" --data-dir "$WORK/$label.0" \
      ledger export | grep -c '"type":"checkpoint"')
  fi
  awk -v l="$label" -v n="$total" -v s="$start" -v e="$end" -v c="$checkpoints" -v procs="$procs" \
    'BEGIN { printf "%-22s %d process(es)  %7d receipts in %6.2f s  = %8.0f appends/s  (mean batch %.1f)\n", l, procs, n, e - s, n / (e - s), n / c }'
}

echo "records per process: $N, concurrency per process: $CONCURRENCY, $(nproc) cores"
run sqlite 1 ""
run postgres-1-writer 1 "$(new_schema 1)"
run postgres-3-writers 3 "$(new_schema 3)"
