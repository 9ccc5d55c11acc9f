"""Unauthenticated input cannot amplify: bounded request fields, bounded audit records, a bounded nonce table, a
rate limit per client address, and a bounded read of the broker's answer."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cchet import BrokerBusy, BrokerError, ProtocolError
from cchet.broker import messages
from cchet.broker.broker import MAX_REASONS, KeyBroker
from cchet.broker.keystore import KeyScope
from cchet.broker.messages import KeyRequest, b64e
from cchet.broker.nonces import MAX_OUTSTANDING, NonceRegistry
from cchet.broker.ratelimit import RATE_BURST, RateLimit, RateLimiter
from cchet.broker.server import MAX_REQUEST, BrokerServer
from cchet.broker.transport import MAX_RESPONSE, HttpTransport, InProcessTransport

EMOJI = "\U0001f600"  # 4 bytes of UTF-8, 12 bytes as a JSON escape


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _request(**fields: Any) -> dict[str, Any]:
    doc = KeyRequest("node-1", "tdx", "f", (bytes(16),)).to_json()
    doc.update(fields)
    return doc


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def _audit_size(broker: KeyBroker) -> int:
    assert broker.audit is not None
    return broker.audit.path.stat().st_size


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            {"node_id": "n" * (messages.MAX_NODE_ID + 1)},
            "node_id is too large: 257 bytes, over the limit of 256 (MAX_NODE_ID)",
        ),
        ({"node_id": EMOJI * 65}, "node_id is too large: 260 bytes, over the limit of 256 (MAX_NODE_ID)"),
        (
            {"function": "f" * (messages.MAX_FUNCTION + 1)},
            "function is too large: 257 bytes, over the limit of 256 (MAX_FUNCTION)",
        ),
        (
            {"data_ids": ["d" * (messages.MAX_DATA_ID + 1)]},
            "a data id is too large: 257 bytes, over the limit of 256 (MAX_DATA_ID)",
        ),
        (
            {"data_ids": [str(i) for i in range(messages.MAX_DATA_IDS + 1)]},
            "data_ids is too large: 257 entries, over the limit of 256 (MAX_DATA_IDS)",
        ),
        (
            {"key_ids": [i.to_bytes(16, "big").hex() for i in range(messages.MAX_KEY_IDS + 1)]},
            "key_ids is too large: 256 entries, over the limit of 255 (MAX_KEY_IDS)",
        ),
        ({"cchet_version": "9" * 65}, "cchet_version is too large: 65 bytes, over the limit of 64 (MAX_CCHET_VERSION)"),
        ({"ticket": b64e(bytes(messages.MAX_TICKET + 1))}, "ticket is larger than 4197 bytes"),
        ({"function": "\ud800"}, "function is not valid Unicode text"),
    ],
    ids=[
        "node-id",
        "node-id-utf8",
        "function",
        "data-id",
        "data-id-count",
        "key-id-count",
        "version",
        "ticket",
        "surrogate",
    ],
)
def test_every_self_declared_field_is_bounded(
    make_broker: Callable[..., KeyBroker], fields: dict[str, Any], words: str
) -> None:
    broker = make_broker()
    before = _audit_size(broker)
    with pytest.raises(ProtocolError) as info:
        broker.challenge({"request": _request(**fields)})
    assert words in str(info.value)
    assert _audit_size(broker) == before, "a refused request leaves no record"


def test_the_largest_request_each_limit_allows_is_accepted(make_broker: Callable[..., KeyBroker]) -> None:
    broker = make_broker()
    doc = _request(
        node_id="n" * messages.MAX_NODE_ID,
        function=EMOJI * (messages.MAX_FUNCTION // 4),
        data_ids=[f"{i:03d}" + "d" * (messages.MAX_DATA_ID - 3) for i in range(messages.MAX_DATA_IDS)],
        key_ids=[i.to_bytes(16, "big").hex() for i in range(messages.MAX_KEY_IDS)],
        cchet_version="9" * messages.MAX_CCHET_VERSION,
    )
    assert broker.challenge({"request": doc})["role"] == "challenge"


def test_a_4_mib_challenge_is_refused_and_the_audit_log_barely_grows(make_broker: Callable[..., KeyBroker]) -> None:
    broker = make_broker()
    with BrokerServer(broker) as server:
        before = _audit_size(broker)
        for big in ("x" * (MAX_REQUEST - 4096), EMOJI * ((MAX_REQUEST - 4096) // 4)):
            body = json.dumps({"request": _request(node_id=big)}, ensure_ascii=False).encode()
            assert MAX_REQUEST - 8192 < len(body) <= MAX_REQUEST
            status, answer, _ = _post(f"{server.url}/v1/challenge", body)
            assert status == 400, answer
            assert "node_id" in answer["error"] and "MAX_NODE_ID" in answer["error"]
        assert _audit_size(broker) - before <= 1024


def test_a_refused_release_writes_bounded_records(make_broker: Callable[..., KeyBroker]) -> None:
    """The largest request each limit allows, for keys scoped elsewhere: 2048 refusals fold into MAX_REASONS,
    and odd self-declared strings enter the audit log as digests."""
    broker = make_broker()
    scope = KeyScope(frozenset({"g"}), frozenset({"elsewhere"}))
    keys = [broker.add_key(scope=scope) for _ in range(8)]
    data_ids = [f"{i:03d}" + EMOJI * ((messages.MAX_DATA_ID - 3) // 4) for i in range(messages.MAX_DATA_IDS)]
    request = _request(
        node_id="\x1b[31m" + "n" * 100,
        function="f" * messages.MAX_FUNCTION,
        key_ids=[k.key_id.hex() for k in keys],
        data_ids=data_ids,
    )
    before = _audit_size(broker)
    answer = broker.release({"request": request, "nonce": b64e(bytes(32)), "suite": [0x20, 1, 2], "public_key": ""})
    assert answer["body"]["verdict"] == "denied"
    reasons = answer["body"]["reasons"]
    assert len(reasons) == MAX_REASONS and reasons[-1].endswith("more reasons (MAX_REASONS)")
    assert _audit_size(broker) - before <= 64 * 1024
    assert broker.audit is not None
    records = [json.loads(line) for line in broker.audit.path.read_text().splitlines()[-2:]]
    assert [r["event"] for r in records] == ["appraisal", "refusal"]
    assert all(r["reasons"] == reasons for r in records)
    assert records[0]["requester"].startswith("node=sha256:") and "function=sha256:" in records[0]["requester"]
    assert "\x1b" not in broker.audit.path.read_text() and EMOJI not in " ".join(reasons)


def test_the_nonce_table_is_bounded_and_never_evicts_a_live_nonce() -> None:
    clock = Clock()
    reg = NonceRegistry(capacity=3, clock=clock)
    live = [reg.issue(b"A" * 32) for _ in range(3)]
    clock.t += 20
    with pytest.raises(BrokerBusy, match="3 challenges outstanding") as info:
        reg.issue(b"A" * 32)
    assert info.value.retry_after_s == 40, "the oldest expires 60 s after it was issued"
    assert len(reg) == 3
    assert reg.consume(live[0], b"A" * 32)[0] == [], "a refused challenge evicted nothing"
    reg.issue(b"B" * 32)
    clock.t += 41  # the two older ones expired: dropped, oldest first, to make room
    fresh = reg.issue(b"C" * 32)
    assert len(reg) == 2
    assert reg.consume(fresh, b"C" * 32)[0] == []


def test_the_default_nonce_table_stops_at_max_outstanding() -> None:
    reg = NonceRegistry(clock=Clock())
    for _ in range(MAX_OUTSTANDING):
        reg.issue(b"A" * 32)
    with pytest.raises(BrokerBusy):
        reg.issue(b"A" * 32)
    assert len(reg) == MAX_OUTSTANDING


def test_a_full_nonce_table_answers_503_with_retry_after(make_broker: Callable[..., KeyBroker]) -> None:
    broker = make_broker(audit_log=None)
    broker.nonces = NonceRegistry(capacity=1)
    with BrokerServer(broker) as server:
        transport = HttpTransport(server.url, busy_wait_s=0)
        transport.send("challenge", {"request": _request()})
        status, answer, headers = _post(f"{server.url}/v1/challenge", json.dumps({"request": _request()}).encode())
        assert status == 503 and "retry after" in answer["error"]
        assert 1 <= int(headers["Retry-After"]) <= 60
        with pytest.raises(BrokerBusy) as info:
            transport.send("challenge", {"request": _request()})
        assert 1 <= info.value.retry_after_s <= 60
    with pytest.raises(BrokerBusy):
        InProcessTransport(broker).send("challenge", {"request": _request()})


def test_a_flood_of_challenges_from_one_address_gets_429(make_broker: Callable[..., KeyBroker]) -> None:
    broker = make_broker()
    with BrokerServer(broker, rate_limit=RateLimit(per_second=0.5, burst=5)) as server:
        body = json.dumps({"request": _request()}).encode()
        statuses = [_post(f"{server.url}/v1/challenge", body) for _ in range(12)]
        assert [s for s, _, _ in statuses[:5]] == [200] * 5
        assert [s for s, _, _ in statuses[5:]] == [429] * 7, [s for s, _, _ in statuses]
        _, answer, headers = statuses[-1]
        assert headers["Retry-After"] == "2" and "retry after 2 s" in answer["error"]
        assert "--rate-limit" in answer["error"]
        assert broker.audit is not None
        events = [json.loads(line)["event"] for line in broker.audit.path.read_text().splitlines()]
        assert events.count("challenge") == 5, "a refused message costs no audit record"
        with pytest.raises(BrokerBusy, match="HTTP 429") as info:
            HttpTransport(server.url, busy_wait_s=0).send("release", {})
        assert info.value.retry_after_s == 2


def test_the_client_waits_as_a_busy_broker_asks_and_retries(make_broker: Callable[..., KeyBroker]) -> None:
    """A rate-limited worker does not fail its call: the transport waits for Retry-After and sends again."""
    broker = make_broker(audit_log=None)
    with BrokerServer(broker, rate_limit=RateLimit(per_second=1, burst=1)) as server:
        transport = HttpTransport(server.url)
        transport.send("challenge", {"request": _request()})
        started = time.monotonic()
        answer = transport.send("challenge", {"request": _request()})  # 429, Retry-After 1, then 200
        assert "nonce" in answer["body"] and time.monotonic() - started >= 0.9
        with pytest.raises(BrokerBusy):
            HttpTransport(server.url, busy_wait_s=0.5).send("challenge", {"request": _request()})


def test_the_default_rate_limit_admits_a_burst_then_refuses() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert [limiter.acquire("10.0.0.1") for _ in range(RATE_BURST)] == [0] * RATE_BURST
    assert limiter.acquire("10.0.0.1") == 1
    assert limiter.acquire("10.0.0.2") == 0, "each address has its own bucket"
    clock.t += 1
    assert [limiter.acquire("10.0.0.1") for _ in range(64)] == [0] * 64, "64 tokens back a second later"
    assert limiter.acquire("10.0.0.1") == 1


def test_the_rate_limiter_remembers_a_bounded_number_of_addresses() -> None:
    limiter = RateLimiter(RateLimit(per_second=1, burst=1), capacity=2, clock=Clock())
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 1
    limiter.acquire("b")
    limiter.acquire("c")  # forgets "a", the least recently seen
    assert len(limiter._buckets) == 2
    assert limiter.acquire("a") == 0
    with pytest.raises(ValueError, match="per_second > 0"):
        RateLimit(per_second=0)


class _Flood(http.server.BaseHTTPRequestHandler):
    """An endpoint that answers every POST with ``status`` and a body one byte over MAX_RESPONSE."""

    status = 200

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b"{}" + b" " * (MAX_RESPONSE - 1)
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flood_url() -> Iterator[Callable[[int], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(status: int) -> str:
        handler = type("Handler", (_Flood,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [200, 400])
def test_an_oversized_broker_answer_is_refused(flood_url: Callable[[int], str], status: int) -> None:
    with pytest.raises(BrokerError, match=f"more than {MAX_RESPONSE} bytes"):
        HttpTransport(flood_url(status)).send("challenge", {"request": _request()})


def test_limits_are_documented() -> None:
    from cchet.broker import broker, nonces, ratelimit, server, tickets, transport

    text = (Path(__file__).parents[2] / "docs" / "broker.md").read_text()
    constants = {
        messages: ("MAX_NODE_ID", "MAX_FUNCTION", "MAX_DATA_ID", "MAX_DATA_IDS", "MAX_CCHET_VERSION", "ECHO_MAX"),
        tickets: ("MAX_KEY_IDS", "MAX_TICKET"),
        broker: ("MAX_REASONS",),
        nonces: ("MAX_OUTSTANDING", "NONCE_TTL_S"),
        ratelimit: ("RATE_PER_S", "RATE_BURST", "MAX_CLIENTS"),
        server: ("MAX_REQUEST",),
        transport: ("MAX_RESPONSE",),
    }
    for module, names in constants.items():
        for name in names:
            value = getattr(module, name)
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            row = f"| `{module.__name__.rsplit('.', 1)[1]}` | `{name}` | {shown} |"
            assert row in text, row


@pytest.mark.parametrize("suite", [[0x20, True, 3], [0x20, 1, 3.0], [0x20, 1], "0x20,1,3", None])
def test_a_suite_that_is_not_three_integer_ids_is_a_protocol_error(
    make_broker: Callable[..., KeyBroker], suite: object
) -> None:
    """Found by mutating every field of a real release message: JSON ``true`` passed as the id 1."""
    broker = make_broker()
    message = {"request": _request(), "nonce": b64e(bytes(32)), "suite": suite, "public_key": ""}
    with pytest.raises(ProtocolError, match="suite must be"):
        broker.release(message)
