"""Drive Warden's MCP server with the official MCP Python SDK (`pip install mcp`).

    python client.py stdio -- warden --data-dir DIR mcp
    python client.py http --url http://127.0.0.1:8080/mcp --key wdn_...

Lists the tools, runs register_intent -> propose_decision -> inscribe_decision, reads the
ledger checkpoint, and calls proxied tools: `tools__echo` is allowed, `tools__shell` with a
destructive command is blocked by policy. Exits non-zero on the first surprise. The proxied
calls need an upstream named `tools` (see README.md); pass --no-proxy to skip them.
"""

import argparse
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

GOVERNANCE_TOOLS = {
    "register_intent", "propose_decision", "inscribe_decision", "evaluate_action",
    "get_forensics", "list_escalations", "get_escalation", "resolve_escalation",
    "register_agent", "get_agent", "verify_lineage", "get_client_summary",
    "get_governance_efficiency", "list_governance_events", "publish_governance_event",
}


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


async def ok(session, name, args):
    r = await session.call_tool(name, args)
    check(not r.is_error, f"{name} failed: {r.content[0].text if r.content else r}")
    check(r.structured_content is not None, f"{name} returned no structured content")
    return r.structured_content


async def exercise(session, proxy):
    await session.initialize()
    tools = {t.name: t for t in (await session.list_tools()).tools}
    check(GOVERNANCE_TOOLS <= tools.keys(), f"missing tools: {GOVERNANCE_TOOLS - tools.keys()}")
    check(tools["get_forensics"].annotations.read_only_hint is True, "get_forensics is read-only")
    check(tools["propose_decision"].output_schema is not None, "propose_decision has an output schema")

    intent = await ok(session, "register_intent",
                      {"agency_id": "agency-1", "description": "Optimise Q3 ad spend"})
    payload = {"change_pct": 20, "confidence": 0.91, "sample_size": 1200}
    proposal = await ok(session, "propose_decision", {
        "intent_id": intent["intent_id"], "decision_type": "budget_change",
        "payload": payload, "agent_id": "agt-7"})
    check(proposal["verdict"] == "ALLOW", f"verdict {proposal['verdict']}")
    inscribed = await ok(session, "inscribe_decision", {
        "intent_id": intent["intent_id"], "decision_node_id": proposal["decision_node_id"],
        "verdict": proposal["verdict"], "payload": payload, "agent_id": "agt-7",
        "agency_id": "agency-1"})
    check(len(inscribed["record_hash"]) == 64, "a record hash")

    # A refusal is a tool result carrying REST's error code.
    bad = await session.call_tool("register_agent", {"name": "a", "model": "m", "temperature": "hot"})
    check(bad.is_error, "a wrong argument type is an error")
    body = json.loads(bad.content[0].text)
    check(body["code"] == "invalid_request" and body["field"] == "temperature", str(body))

    cp = await session.read_resource("warden://ledger/checkpoint")
    check(json.loads(cp.contents[0].text)["tree_size"] >= 1, "a checkpoint")

    if proxy:
        check("tools__echo" in tools and "tools__shell" in tools, "the proxied tools are listed")
        echo = await session.call_tool("tools__echo", {"text": "hello"})
        check(not echo.is_error and echo.content[0].text == "hello", f"echo: {echo}")
        blocked = await session.call_tool("tools__shell", {"command": "rm -rf /"})
        check(blocked.is_error, "the destructive command is blocked")
        body = json.loads(blocked.content[0].text)
        check(body["code"] == "blocked" and "DESTRUCTIVE_COMMAND" in body["reason_codes"], str(body))
    print(f"python-sdk: {len(tools)} tools, decision {inscribed['decision_id']} inscribed"
          + (", proxied call blocked" if proxy else ""))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("transport", choices=["stdio", "http"])
    ap.add_argument("--url")
    ap.add_argument("--key")
    ap.add_argument("--no-proxy", action="store_true")
    ap.add_argument("command", nargs="*", help="after --: the server command (stdio)")
    a = ap.parse_args()
    if a.transport == "stdio":
        # The SDK passes a child only a safe subset of the environment; Warden's settings too.
        env = {k: v for k, v in os.environ.items() if k.startswith("WARDEN_")}
        params = StdioServerParameters(command=a.command[0], args=a.command[1:], env=env)
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as s:
                await exercise(s, not a.no_proxy)
    else:
        from mcp.shared._httpx_utils import create_mcp_http_client

        client = create_mcp_http_client(headers={"Authorization": f"Bearer {a.key}"})
        async with client, streamable_http_client(a.url, http_client=client) as (read, write):
            async with ClientSession(read, write) as s:
                await exercise(s, not a.no_proxy)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
