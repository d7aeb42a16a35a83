#!/usr/bin/env bash
# Third-party MCP clients against Warden, as CI runs them (.ci/run): the official MCP Python SDK
# (PyPI `mcp`, in a venv) and the MCP Inspector CLI (npm `@modelcontextprotocol/inspector`),
# each over stdio (`warden mcp`) and streamable HTTP (`warden serve`, /mcp). Each lists the
# tools, runs register_intent -> propose_decision -> inscribe_decision, and calls a proxied
# tool of the `upstream` example (tools__shell with `rm -rf /`) and gets it blocked by policy.
#
# Installs go to $WARDEN_CI_CACHE (default target/mcp-clients), reused between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
cache="${WARDEN_CI_CACHE:-$root/target/mcp-clients}"
mkdir -p "$cache"

cargo build --quiet --bin warden
cargo build --quiet -p warden-mcp --example upstream
warden="$root/target/debug/warden"
upstream="$root/target/debug/examples/upstream"

# The official Python SDK, current major.
if [ ! -x "$cache/venv/bin/python" ]; then
    python3 -m venv "$cache/venv"
fi
"$cache/venv/bin/pip" install --quiet --disable-pip-version-check "mcp>=2,<3"
python="$cache/venv/bin/python"

# The Inspector CLI needs Node >= 22.19; the npm registry's `node` package ships one.
node_bin="$cache/node/node_modules/.bin"
if [ ! -x "$node_bin/node" ]; then
    npm install --silent --no-audit --no-fund --prefix "$cache/node" node@22 >/dev/null
fi
export PATH="$node_bin:$PATH"
inspector="$cache/npm/node_modules/.bin/mcp-inspector"
if [ ! -x "$inspector" ]; then
    npm install --silent --no-audit --no-fund --prefix "$cache/npm" \
        @modelcontextprotocol/inspector@2.12.0 >/dev/null
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Policy packs with the tool-call rules, and the upstream example behind /mcp as `tools`.
cat >"$work/warden.yaml" <<YAML
policy:
  dir: $root/examples/policies
mcp:
  upstreams:
    - name: tools
      command: $upstream
      args: [--stdio]
YAML
export WARDEN_CONFIG="$work/warden.yaml"

json_field() { "$python" -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "== Python SDK over stdio"
"$python" examples/mcp/client.py stdio -- "$warden" --data-dir "$work/stdio" mcp 2>"$work/stdio.log"

echo "== Python SDK over streamable HTTP"
"$warden" --data-dir "$work/http" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 100); do
    grep -q "data plane listening" "$work/serve.log" && break
    sleep 0.1
done
addr=$(grep "data plane listening" "$work/serve.log" | sed 's/.*addr=//')
key=$("$warden" --data-dir "$work/http" keys create --tenant default --scopes mcp,write \
    --json 2>/dev/null | json_field "['key']")
"$python" examples/mcp/client.py http --url "http://$addr/mcp" --key "$key" 2>"$work/http.log"

echo "== MCP Inspector CLI"
inspect() { # inspect TARGET... -- ARGS...: one Inspector CLI call; prints its JSON answer
    timeout 120 "$inspector" --cli "$@" 2>>"$work/inspector.log" || true
}
for transport in stdio http; do
    if [ "$transport" = stdio ]; then
        # The Inspector passes a child only part of its environment: name the config.
        target=(-e "WARDEN_CONFIG=$WARDEN_CONFIG" "$warden" --data-dir "$work/inspector-stdio" mcp)
    else
        target=("http://$addr/mcp" --transport http --header "Authorization: Bearer $key")
    fi
    tools=$(inspect "${target[@]}" --method tools/list)
    for t in register_intent propose_decision inscribe_decision tools__shell; do
        grep -q "\"name\": \"$t\"" <<<"$tools" || { echo "inspector/$transport: no tool $t"; exit 1; }
    done
    intent=$(inspect "${target[@]}" --method tools/call --tool-name register_intent \
        --tool-arg agency_id=agency-1 --tool-arg "description=Q3 ad spend" |
        json_field "['structuredContent']['intent_id']")
    proposal=$(inspect "${target[@]}" --method tools/call --tool-name propose_decision \
        --tool-arg "intent_id=$intent" --tool-arg decision_type=budget_change \
        --tool-arg 'payload={"change_pct": 20, "confidence": 0.91, "sample_size": 1200}' \
        --tool-arg agent_id=agt-7)
    node=$(json_field "['structuredContent']['decision_node_id']" <<<"$proposal")
    verdict=$(json_field "['structuredContent']['verdict']" <<<"$proposal")
    inscribed=$(inspect "${target[@]}" --method tools/call --tool-name inscribe_decision \
        --tool-arg "intent_id=$intent" --tool-arg "decision_node_id=$node" \
        --tool-arg "verdict=$verdict" --tool-arg agent_id=agt-7 --tool-arg agency_id=agency-1 \
        --tool-arg 'payload={"change_pct": 20, "confidence": 0.91, "sample_size": 1200}')
    record=$(json_field "['structuredContent']['record_hash']" <<<"$inscribed")
    blocked=$(inspect "${target[@]}" --method tools/call --tool-name tools__shell \
        --tool-arg "command=rm -rf /")
    grep -q 'DESTRUCTIVE_COMMAND' <<<"$blocked" || { echo "inspector/$transport: not blocked: $blocked"; exit 1; }
    echo "inspector/$transport: tools listed, decision inscribed (${record:0:12}…), proxied call blocked"
done
echo "mcp-clients: 4 passed, 0 failed"
