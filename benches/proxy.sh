#!/usr/bin/env bash
# The proxy benchmark: the mock provider, Warden and a load generator on loopback, Warden
# pinned to one core and everything else to the other, with guardians, policy, limits and the
# ledger all on. Reports, against a direct call to the same mock in the same run: added latency
# at fixed rates, maximum throughput, CPU time per request (from /proc) and RSS.
#
#   benches/proxy.sh [SECONDS]      (default 10 s per run)
#
# The two rows with a latency target (2,000 req/s batched; sync against the mock that answers
# after 20 ms) run as PAIRS direct/Warden pairs (default 5) and report the median added p99.
#
# WARDEN_BENCH_BIN=DIR runs the binaries in DIR (warden, mock-upstream, loadgen) instead of
# building them: keep a copy of an earlier build there to compare before and after in one session.
#
# Needs `taskset` (util-linux) and 2+ cores. Builds release binaries first.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
WARDEN_CPU=0
OTHER_CPU=1

source benches/lib.sh
start_mock "$OTHER_CPU"

# Starts Warden with durability $1; sets WARDEN_PID, API and KEY.
start_warden() {
  local durability=$1
  write_config "$durability"
  rm -rf "$WORK/data"
  WARDEN_CONFIG="$WORK/warden.yaml" taskset -c "$WARDEN_CPU" "$BIN/warden" --data-dir "$WORK/data" \
    serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 > "$WORK/warden.out" 2> "$WORK/warden.err" &
  WARDEN_PID=$!
  PIDS+=("$WARDEN_PID")
  await_warden
}

stop_warden() { kill "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true; }

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

load() { taskset -c "$OTHER_CPU" "$BIN/loadgen" "$@" --seconds "$SECS"; }

# Runs loadgen through Warden, measuring Warden's CPU per request and RSS under load.
through() {
  local before after out
  before=$(cpu_ticks "$WARDEN_PID")
  out=$(load "http://$API/v1/chat/completions" --key "$KEY" "$@")
  after=$(cpu_ticks "$WARDEN_PID")
  local n; n=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  local cpu_us; cpu_us=$(python3 -c "print(round(($after-$before)/$TICK*1e6/max($n,1),1))")
  echo "$out" | python3 -c "import json,sys; d=json.load(sys.stdin); d['warden_cpu_us_per_req']=$cpu_us; d['warden_rss_mib']=round($(rss_kib "$WARDEN_PID")/1024,1); print(json.dumps(d))"
}

# Stale names in link/warden.order cost memory (build.rs): say how many the binary still has.
if command -v nm >/dev/null && [ -f link/warden.order ]; then
  echo "link/warden.order: $(grep -v '^#' link/warden.order | sort -u | comm -12 - <(nm --defined-only "$BIN/warden" | awk '{print $3}' | sort -u) | wc -l) of $(grep -vc '^#' link/warden.order) functions found in $BIN/warden"
fi
PAIRS="${PAIRS:-5}"
# Runs PAIRS direct/Warden pairs back to back with the load arguments after $1 (the label), and
# prints the median of Warden's added p99: one pair's difference is as noisy as the target is
# small, since the direct call's own p99 moves by a few tenths of a millisecond between runs.
pairs() {
  local label=$1 i d w
  shift
  local added=()
  for i in $(seq "$PAIRS"); do
    d=$(load "http://$MOCK/v1/chat/completions" "$@")
    w=$(through "$@")
    echo "direct  $label pair=$i $d"
    echo "warden  $label pair=$i $w"
    added+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[2])["p99_us"] - json.loads(sys.argv[1])["p99_us"])' "$d" "$w")")
  done
  echo "added p99 $label: median $(printf '%s\n' "${added[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}') µs over $PAIRS pairs (${added[*]} µs)"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in batched sync; do
  start_warden "$mode"
  # Warm up (connections, caches, lazily built state).
  load "http://$API/v1/chat/completions" --key "$KEY" --rate 200 --seconds 2 > /dev/null || true
  echo "== ledger.durability: $mode; Warden RSS idle: $(( $(rss_kib "$WARDEN_PID") / 1024 )) MiB"
  echo "direct  rate=500 $(load "http://$MOCK/v1/chat/completions" --rate 500)"
  echo "warden  rate=500 $(through --rate 500)"
  if [ "$mode" = sync ]; then
    echo "direct  rate=2000 $(load "http://$MOCK/v1/chat/completions" --rate 2000)"
    echo "warden  rate=2000 $(through --rate 2000)"
    pairs "rate=2000 model=mock-20ms" --rate 2000 --model mock-20ms
  else
    pairs "rate=2000" --rate 2000
    echo "direct  stream rate=500 $(load "http://$MOCK/v1/chat/completions" --rate 500 --stream)"
    echo "warden  stream rate=500 $(through --rate 500 --stream)"
  fi
  echo "direct  max c=64 $(load "http://$MOCK/v1/chat/completions" --concurrency 64)"
  echo "warden  max c=64 $(through --concurrency 64)"
  stop_warden
done
