"""A webhook receiver in Python, checking Warden's deliveries with the `standardwebhooks` PyPI
package (the Standard Webhooks reference verifier), as a consumer in any language would.

Run by .ci/run. It starts a receiver on a free loopback port that fails its first two
deliveries (500) and then accepts, starts Warden (target/debug/warden) with that receiver
allow-listed and a signing secret, registers a webhook, publishes an event and a decision, and
checks that:
  - every delivery's signature verifies (and a tampered body does not);
  - retries carry the same webhook-id, and each event is processed exactly once;
  - the body is the event, as the API lists it.

Usage: python examples/webhooks/receiver_check.py [TARGET_DIR]   (default: target/debug)
"""

import base64
import datetime
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "target", "debug")
SECRET = "whsec_" + base64.b64encode(b"receiver check secret, 32 bytes").decode()


class State:
    lock = threading.Lock()
    failures_left = 2
    attempts = []  # webhook-id of every attempt
    processed = {}  # webhook-id -> body
    bad_signatures = 0


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError:
            with State.lock:
                State.bad_signatures += 1
            self.send_response(400)
            self.end_headers()
            return
        msg_id = headers["webhook-id"]
        with State.lock:
            State.attempts.append(msg_id)
            if State.failures_left > 0:
                State.failures_left -= 1
                status = 500
            else:
                State.processed.setdefault(msg_id, json.loads(body))
                status = 204
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


def call(addr, method, path, key, body=None):
    req = urllib.request.Request(
        f"http://{addr}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver = f"127.0.0.1:{server.server_address[1]}"

    work = tempfile.mkdtemp(prefix="warden-webhooks-")
    env = dict(
        os.environ,
        RECEIVER_SECRET=SECRET,
        WARDEN_EVENTS__WEBHOOK_SECRETS="[{alias: primary, env: RECEIVER_SECRET}]",
        WARDEN_EVENTS__ALLOWED_TARGETS=receiver,
        WARDEN_EVENTS__RETRY_BASE="100ms",
        WARDEN_EVENTS__RETRY_MAX="500ms",
        WARDEN_LOG__LEVEL="warn,warden=info",
    )
    warden = subprocess.Popen(
        [os.path.join(TARGET, "warden"), "--data-dir", os.path.join(work, "data"), "serve",
         "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        key = None
        while key is None:
            line = warden.stdout.readline()
            if not line:
                raise SystemExit("warden exited: " + warden.stderr.read())
            if line.strip().startswith("wdn_"):
                key = line.strip()
        addr = None
        while addr is None:
            line = warden.stderr.readline()
            if not line:
                raise SystemExit("warden exited before listening")
            m = re.search(r"data plane listening addr=(\S+)", line)
            if m:
                addr = m.group(1)

        status, hook = call(addr, "POST", "/v1/governance-events/webhooks", key, {
            "target_url": f"http://{receiver}/hook", "hmac_secret_alias": "primary"})
        assert status == 201, hook
        status, published = call(addr, "POST", "/api/v1/governance-events", key, {
            "event_type": "risk_score.changed", "source_table": "agents", "source_id": "agt-1",
            "trigger_reason": "weekly recompute", "score_before": 40, "score_after": 71,
            "idempotency_key": "ci-1"})
        assert status == 201, published
        status, intent = call(addr, "POST", "/v1/register-intent", key, {
            "agency_id": "ci", "description": "webhook check"})
        assert status == 201, intent
        status, proposal = call(addr, "POST", "/v1/decisions/propose", key, {
            "intent_id": intent["intent_id"], "decision_type": "budget_change", "agent_id": "agt-1",
            "payload": {"change_pct": 60, "confidence": 0.95, "sample_size": 5000}})
        assert status == 200 and proposal["verdict"] == "BLOCK", proposal

        # risk_score.changed, decision.made and policy.violation.detected.
        deadline = time.time() + 30
        while time.time() < deadline:
            with State.lock:
                if len(State.processed) >= 3:
                    break
            time.sleep(0.05)
        time.sleep(0.5)  # anything delivered twice would arrive now
        with State.lock:
            processed = dict(State.processed)
            attempts = list(State.attempts)
            bad = State.bad_signatures
        types = sorted(b["type"] for b in processed.values())
        assert types == ["decision.made", "policy.violation.detected", "risk_score.changed"], types
        assert bad == 0, f"{bad} deliveries failed verification"
        # Two failures, then one success per event: the failed ones were retried with their id.
        assert len(attempts) == 5, attempts
        for msg_id in processed:
            assert attempts.count(msg_id) >= 1
        risk = next(b for b in processed.values() if b["type"] == "risk_score.changed")
        assert risk["data"]["id"] == published["event"]["id"], risk
        assert risk["data"]["score_after"] == 71, risk

        # The verifier is not a rubber stamp: a changed body fails.
        msg_id = next(iter(processed))
        wh = Webhook(SECRET)
        ts = int(time.time())
        sig = wh.sign(msg_id, datetime.datetime.fromtimestamp(ts, datetime.timezone.utc), '{"a":1}')
        try:
            wh.verify('{"a":2}', {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig})
            raise SystemExit("a tampered body verified")
        except WebhookVerificationError:
            pass
        print(f"webhooks: {len(processed)} events delivered once each over {len(attempts)} attempts, "
              "every signature verified by the standardwebhooks package")
    finally:
        warden.terminate()
        warden.wait(timeout=30)
        server.shutdown()


if __name__ == "__main__":
    main()
