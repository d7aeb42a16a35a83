# Shared by benches/proxy.sh and benches/symbol-order.sh (sourced from the repository's root):
# the binaries, a scratch directory, the mock provider, and the configuration Warden runs with
# under load (guardians, policy, limits and the ledger all on).
#
# Sourcing it sets BIN (WARDEN_BENCH_BIN, or a fresh release build), WORK (removed at exit) and
# PIDS (killed at exit).

if [ -n "${WARDEN_BENCH_BIN:-}" ]; then
  BIN=$WARDEN_BENCH_BIN
else
  cargo build --release -p warden -p warden-testkit >&2
  BIN=target/release
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# Starts the mock provider, pinned with `taskset -c $1` when given; sets MOCK to its address.
start_mock() {
  local pin=()
  [ -n "${1:-}" ] && pin=(taskset -c "$1")
  "${pin[@]}" "$BIN/mock-upstream" 127.0.0.1:0 > "$WORK/mock.out" &
  PIDS+=($!)
  until grep -q listening "$WORK/mock.out"; do sleep 0.1; done
  MOCK=$(awk '/listening/ {print $3}' "$WORK/mock.out")
}

# Writes $WORK/warden.yaml for ledger durability $1, against the mock.
write_config() {
  cat > "$WORK/warden.yaml" <<YAML
upstreams:
  - name: mock
    base_url: http://$MOCK/v1
    models: ["*"]
    timeout: 30s
limits:
  - per: key
    requests_per_minute: 100000000
    tokens_per_minute: 100000000000
ledger:
  durability: $1
log:
  level: "warn,warden=info"
YAML
}

# Waits until the Warden started with output in $WORK/warden.out and logs in $WORK/warden.err
# listens and has printed its admin key; sets API (its data-plane address) and KEY.
await_warden() {
  until grep -q "data plane listening" "$WORK/warden.err"; do sleep 0.1; done
  API=$(grep "data plane listening" "$WORK/warden.err" | sed 's/.*addr=//' | tr -d '[:space:]' | sed 's/\x1b\[[0-9;]*m//g')
  until grep -q '^ *wdn_' "$WORK/warden.out"; do sleep 0.1; done
  KEY=$(grep -o 'wdn_[A-Za-z0-9_-]*' "$WORK/warden.out" | head -1)
}
