"""Key-release latency (DESIGN.md section 8): first release, cached re-use, 32 concurrent clients.

First release runs the whole protocol on simulated TDX + GPU evidence: challenge, evidence collection, parse,
verify, appraise, the call ticket's check, HPKE (MLKEM768-X25519) seal and open, signatures, and the durable
key store and audit log writes. DESIGN.md gives no baseline for it; the same-run reference figures are the
worker's own evidence collection and one bare HPKE seal+open, so the broker's own share is visible. Cached re-use is a
:class:`BrokerClient` returning keys it already holds. Goals: first release <= 50 ms median, cached re-use
<= 1 ms.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cchet.attest.binding import Binding
from cchet.attest.policy import Policy
from cchet.attest.simulate.attester import SimulatedAttester
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.verifier import simulation_options
from cchet.bench.timing import machine_info
from cchet.broker.appraisal import EvidenceAppraiser
from cchet.broker.broker import KeyBroker
from cchet.broker.client import BrokerClient
from cchet.broker.hpke import DEFAULT_SUITE, HpkeKeyPair, seal_to
from cchet.broker.server import BrokerServer
from cchet.broker.tickets import issue_ticket
from cchet.broker.transport import HttpTransport, InProcessTransport, Transport

__all__ = ["run"]


def _median_ms(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


FUNCTION = bytes(32)  # the identity the data owner's ticket names


class _Worker:
    """A worker of the data owner's session: its requests carry the session's call ticket for one key."""

    def __init__(
        self, broker: KeyBroker, transport: Transport, attester: SimulatedAttester, node: str, ticket: bytes
    ) -> None:
        self.client = BrokerClient(transport, broker_id=broker.broker_id, attester=attester, node_id=node)
        self.ticket = ticket

    def keys(self, key_id: bytes) -> Any:
        return self.client.keys([key_id], function=FUNCTION.hex(), ticket=self.ticket)


def table(result: dict[str, Any]) -> str:
    """A Markdown table of a result document."""
    lines = ["| figure | ms |", "|---|---:|"]
    lines += [
        f"| {name.removesuffix('_ms').replace('_', ' ')} | {value:.3f} |" for name, value in result["rows"].items()
    ]
    return "\n".join(lines)


def run(repeats: int = 15, clients: int = 32, quick: bool = False) -> dict[str, Any]:
    """Measure (``quick``: 5 repeats, 8 clients); returns the result document."""
    if quick:
        repeats, clients = 5, 8
    with tempfile.TemporaryDirectory(prefix="cchet-bench-broker-") as tmp:
        root = Path(tmp)
        authority = SimulatedAuthority.open(root / "sim")
        broker = KeyBroker(
            appraiser=EvidenceAppraiser(simulation_options(authority)),
            default_policy=Policy(name="bench", allow_simulation=True),
            state_dir=root / "state",
            audit_log=root / "audit.jsonl",
        )
        key = broker.add_key()
        job = broker.add_key(kind="job")
        ticket = issue_ticket(
            job, session_id=bytes(16), function=FUNCTION, key_ids=[key.key_id], tee="any", gpu=None
        ).to_bytes()
        attester = SimulatedAttester(authority, "tdx", 1)
        inproc = InProcessTransport(broker)

        def first_release() -> None:
            _Worker(broker, inproc, attester, "n", ticket).keys(key.key_id)

        warm = _Worker(broker, inproc, attester, "n", ticket)
        warm.keys(key.key_id)

        def evidence_only() -> None:
            attester.collect(os.urandom(32), Binding(broker.broker_id, *DEFAULT_SUITE.ids, b"k" * 1216, bytes(32)))

        def hpke_only() -> None:
            pair = HpkeKeyPair(DEFAULT_SUITE)
            pair.open(seal_to(DEFAULT_SUITE, pair.public_bytes, b"x" * 200, b"info"), b"info")

        rows = {
            "first_release_in_process_ms": _median_ms(first_release, repeats),
            "cached_reuse_ms": _median_ms(lambda: warm.keys(key.key_id), repeats * 10),
            "reference_evidence_collection_ms": _median_ms(evidence_only, repeats),
            "reference_hpke_seal_open_ms": _median_ms(hpke_only, repeats),
        }
        with BrokerServer(broker) as server:
            http = HttpTransport(server.url)
            rows["first_release_http_ms"] = _median_ms(
                lambda: _Worker(broker, http, attester, "n", ticket).keys(key.key_id), repeats
            )
            barrier = threading.Barrier(clients)
            done: list[float] = []

            def one(i: int) -> None:
                c = _Worker(broker, http, attester, f"node-{i}", ticket)
                barrier.wait()
                start = time.perf_counter()
                c.keys(key.key_id)
                done.append((time.perf_counter() - start) * 1e3)

            start = time.perf_counter()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rows[f"concurrent_{clients}_clients_wall_ms"] = (time.perf_counter() - start) * 1e3
            rows[f"concurrent_{clients}_clients_median_ms"] = statistics.median(done)
            rows[f"concurrent_{clients}_clients_max_ms"] = max(done)
    return {
        "benchmark": "broker",
        "method": f"median of {repeats} runs after a warm-up (cached re-use: {repeats * 10})",
        "baseline": "none in DESIGN.md; same-run references: evidence collection, one HPKE seal+open",
        "goals": {"first_release_ms": 50, "cached_reuse_ms": 1},
        "evidence": "SIMULATED TDX quote v4 + one SIMULATED H100 SPDM report",
        "machine": machine_info(),
        "rows": rows,
    }
