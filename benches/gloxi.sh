#!/usr/bin/env bash
# Time to the first SSE event of POST /v1/chat (no LLM), against a running `warden serve`:
# N questions in sequence with curl, time_starttransfer of each (the `meta` event is the first
# byte of the body and is flushed as soon as retrieval is done), then p50 / p99. The first
# question, which builds the index, is timed apart.
# Usage: benches/gloxi.sh [BINARY] [N]   (default target/release/warden, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-target/release/warden}"
N="${2:-200}"
DIR="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
"$BIN" --data-dir "$DIR/data" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  >"$DIR/out" 2>"$DIR/err" &
PID=$!
for _ in $(seq 300); do
  grep -q "data plane listening" "$DIR/err" 2>/dev/null && break
  sleep 0.1
done
ADDR="$(grep -o 'data plane listening addr=[0-9.:]*' "$DIR/err" | sed 's/.*addr=//')"
KEY="$(grep -o 'wdn_[A-Za-z0-9_-]*' "$DIR/out" | head -1)"
grep -o '"query": *"[^"]*"' governance/corpus/eval.jsonl | sed 's/"query": *//' >"$DIR/q"
# The index is built at the first question: one unmeasured question builds it.
curl -s -o /dev/null -w 'first question (builds the index): %{time_starttransfer} s\n' \
  "http://$ADDR/v1/chat" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d "{\"query\": $(head -1 "$DIR/q")}"
: >"$DIR/t"
for i in $(seq "$N"); do
  Q="$(sed -n "$(( (i - 1) % $(wc -l <"$DIR/q") + 1 ))p" "$DIR/q")"
  curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://$ADDR/v1/chat" \
    -H "Authorization: Bearer $KEY" -H 'Accept: text/event-stream' \
    -H 'Content-Type: application/json' -d "{\"query\": $Q}" >>"$DIR/t"
done
sort -n "$DIR/t" | awk '{a[NR]=$1} END {
printf "first SSE event over %d questions: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
  NR, a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000, a[NR]*1000 }'
