#!/usr/bin/env bash
# Writes link/warden.order: the functions of the release binary that the proxy runs once it has
# started, hottest first, which build.rs hands to the linker to place together (why: build.rs).
#
#   benches/symbol-order.sh
#
# Run it again after a dependency or toolchain update: the names carry hashes that those change,
# and the linker skips names it does not find (benches/proxy.sh prints how many it found).
# WARDEN_BENCH_BIN=DIR profiles the binaries in DIR (warden, mock-upstream, loadgen) instead of
# building them. Needs valgrind (callgrind); takes about two minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind (callgrind) is needed" >&2; exit 1; }

source benches/lib.sh
start_mock

# Profiles Warden with durability $1 under the bench's kinds of load, into $WORK/callgrind.$1.
# Instrumentation starts once start-up is over: start-up code is handed back after it runs
# (src/memory.rs), so only what runs afterwards belongs together.
profile() {
  local mode=$1
  write_config "$mode"
  rm -rf "$WORK/data"
  WARDEN_CONFIG="$WORK/warden.yaml" valgrind --tool=callgrind --instr-atstart=no --demangle=no \
    --callgrind-out-file="$WORK/callgrind.$mode" \
    "$BIN/warden" --data-dir "$WORK/data" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    > "$WORK/warden.out" 2> "$WORK/warden.err" &
  local pid=$!
  PIDS+=("$pid")
  await_warden
  sleep 10 # start-up under valgrind ends after "listening": the key is printed first
  callgrind_control -i on "$pid" > /dev/null 2>&1
  local url="http://$API/v1/chat/completions"
  "$BIN/loadgen" "$url" --key "$KEY" --rate 50 --seconds 10 > /dev/null
  "$BIN/loadgen" "$url" --key "$KEY" --rate 20 --seconds 5 --stream > /dev/null
  "$BIN/loadgen" "$url" --key "$KEY" --rate 20 --seconds 5 --model mock-20ms > /dev/null
  "$BIN/loadgen" "$url" --key "$KEY" --concurrency 16 --seconds 5 > /dev/null
  sleep 12 # the periodic work: memory trim, checkpoints
  callgrind_control -i off "$pid" > /dev/null 2>&1
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  echo "profiled ledger.durability: $mode" >&2
}

profile batched
profile sync

python3 - "$WORK"/callgrind.batched* "$WORK"/callgrind.sync* > link/warden.order <<'PY'
import collections, re, sys

files = sys.argv[1:]
cost = collections.Counter()
for path in files:
    names, objects = {}, {}
    obj = fn = None
    skip = False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^(ob|cob|fn|cfn|fi|fe|fl|cfi|cfl)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, idx, name = m.groups()
            table = objects if kind in ("ob", "cob") else names
            if name:
                table[idx] = name
            if kind == "ob":
                obj = objects[idx]
            elif kind == "fn":
                fn = names[idx] if obj and obj.endswith("/warden") else None
            continue
        if line.startswith("calls="):
            skip = True  # the next cost line is the call's inclusive cost
            continue
        m = re.match(r"^[+\-*]?\d+ (\d+)$", line)
        if m:
            if skip:
                skip = False
            elif fn:
                # callgrind marks recursion levels as name'2, name'3, ...
                cost[re.sub(r"'\d+$", "", fn)] += int(m.group(1))
print("# The functions the release binary runs once started, hottest first: the proxy under")
print("# load in both ledger durabilities (callgrind). Written by benches/symbol-order.sh;")
print("# read by build.rs. Rewrite it after dependency or toolchain updates.")
for name, c in cost.most_common():
    if c > 0 and "#" not in name:
        print(name)
PY
echo "link/warden.order: $(grep -vc '^#' link/warden.order) functions" >&2
