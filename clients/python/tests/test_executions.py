import asyncio
import http.server
import json
import threading
import uuid

import pytest

import codebeaker


def test_submit_and_wait(client):
    sub = client.submit("python", "result = input_data * 3", 7)
    assert sub.status == "queued" and sub.execution_id
    done = client.wait(sub.execution_id, poll_interval=0.1, timeout=60)
    assert done.status == "completed" and done.done
    assert isinstance(done.result, codebeaker.ExecuteResult) and done.result.output == 21
    assert any(e.execution_id == sub.execution_id for e in client.list_executions(limit=50))


def test_a_batch_can_be_submitted(client):
    sub = client.submit("python", "result = input_data", inputs=[1, 2], max_concurrency=2)
    done = client.wait(sub.execution_id, poll_interval=0.1, timeout=60)
    assert isinstance(done.result, codebeaker.BatchResult)
    assert sorted(r.output for r in done.result.results) == [1, 2]


def test_idempotency_key_returns_the_first_execution(client):
    key = f"sdk-{uuid.uuid4()}"
    a = client.submit("python", "result = 1", idempotency_key=key)
    b = client.submit("python", "result = 1", idempotency_key=key)
    assert a.execution_id == b.execution_id
    with pytest.raises(codebeaker.InvalidRequest) as e:
        client.submit("python", "result = 2", idempotency_key=key)
    assert e.value.kind == "idempotency_key_reused"


def test_cancel(client):
    sub = client.submit("python", "import time\ntime.sleep(3)\nresult = 1", timeout_ms=10_000)
    cancelled = client.cancel(sub.execution_id)
    assert cancelled.execution_id == sub.execution_id
    final = client.wait(sub.execution_id, poll_interval=0.1, timeout=60)
    assert final.status == "cancelled"


def test_wait_times_out(client):
    sub = client.submit("python", "import time\ntime.sleep(2)\nresult = 1", timeout_ms=10_000)
    with pytest.raises(codebeaker.TransportError):
        client.wait(sub.execution_id, poll_interval=0.1, timeout=0.3)
    client.cancel(sub.execution_id)


def test_async_submit_wait_and_cancel(url):
    async def main():
        async with codebeaker.AsyncClient(url=url) as c:
            sub = await c.submit("python", "result = 'async'")
            done = await c.wait(sub.execution_id, poll_interval=0.1, timeout=60)
            assert done.result.output == "async"
            slow = await c.submit("python", "import time\ntime.sleep(3)", timeout_ms=10_000)
            await c.cancel(slow.execution_id)
            assert (await c.wait(slow.execution_id, poll_interval=0.1)).status == "cancelled"
    asyncio.run(main())


class _Receiver(http.server.BaseHTTPRequestHandler):
    calls: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        self.calls.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_real_callback_verifies_with_the_keys_secret(client):
    """The gateway's callback, received here, verifies with `webhook_secret()` (the gateway
    under test allows callbacks to loopback: webhooks.allow_private)."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        sub = client.submit("python", "result = 42", callback_url=url)
        client.wait(sub.execution_id, poll_interval=0.1, timeout=60)
        for _ in range(100):
            if _Receiver.calls:
                break
            threading.Event().wait(0.1)
        assert _Receiver.calls, "no callback arrived"
        headers, body = _Receiver.calls[0]
        headers = {k.lower(): v for k, v in headers.items()}
        secret = client.webhook_secret()
        assert secret.startswith("whsec_")
        ts, sig = headers["x-codebeaker-timestamp"], headers["x-codebeaker-signature"]
        assert codebeaker.verify_webhook(secret, ts, sig, body)
        assert not codebeaker.verify_webhook(secret, ts, sig, body + b" ")
        assert json.loads(body)["executionId"] == sub.execution_id
    finally:
        server.shutdown()
