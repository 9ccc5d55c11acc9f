"""The broker as a service: HTTP on loopback, 32 concurrent clients, crash safety, `cchet broker serve`."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cchet
from cchet import BrokerError, KeyReleaseDenied
from cchet.attest.simulate.attester import SimulatedAttester
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.broker.broker import KeyBroker
from cchet.broker.client import BrokerClient
from cchet.broker.messages import ProtocolError
from cchet.broker.server import BrokerServer
from cchet.broker.tickets import issue_ticket
from cchet.broker.transport import HttpTransport, InProcessTransport, Transport
from cchet.crypto.keyfile import read_key_file
from tests.broker.owner import OwnedClient, Owner
from tests.broker_service import broker_serve


class Recording:
    """A transport that records every nonce the broker hands out."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.nonces: list[str] = []
        self.lock = threading.Lock()

    def send(self, step: str, message: dict[str, Any]) -> dict[str, Any]:
        answer = self.inner.send(step, message)
        if step == "challenge":
            with self.lock:
                self.nonces.append(answer["body"]["nonce"])
        return answer


def _concurrent(broker: KeyBroker, transport: Transport, authority: SimulatedAuthority, n: int = 32) -> None:
    key = broker.add_key()
    owner = Owner(broker)
    recording = Recording(transport)
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        client = OwnedClient(
            BrokerClient(
                recording,
                broker_id=broker.broker_id,
                attester=SimulatedAttester.for_kind("tdx", str(authority.key_dir)),
                node_id=f"node-{i}",
            ),
            owner,
        )
        barrier.wait()
        try:
            results[i] = client.keys([key.key_id], function="f")[key.key_id]
        except Exception as e:  # recorded and asserted below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r == key for r in results), [r for r in results if r != key][:3]
    assert len(recording.nonces) == n and len(set(recording.nonces)) == n, "no nonce served twice"


def test_32_concurrent_clients_in_process(make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority) -> None:
    broker = make_broker(audit_log=None)
    _concurrent(broker, InProcessTransport(broker), authority)


def test_32_concurrent_clients_over_http(make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority) -> None:
    broker = make_broker(audit_log=None)
    with BrokerServer(broker) as server:
        _concurrent(broker, HttpTransport(server.url), authority)


def test_http_errors_are_clear(make_broker: Callable[..., KeyBroker], make_client: Callable[..., OwnedClient]) -> None:
    broker = make_broker()
    with BrokerServer(broker) as server:
        request = urllib.request.Request(f"{server.url}/v1/challenge", data=b"{not json", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 400 and "not JSON" in info.value.read().decode()
        with pytest.raises(BrokerError, match="missing field"):
            HttpTransport(server.url).send("challenge", {"request": {"version": 1}})
        identity = json.loads(urllib.request.urlopen(f"{server.url}/v1/identity", timeout=10).read())
        assert identity["broker_id"] == broker.broker_id.hex()
        client = make_client(broker, transport=HttpTransport(server.url))
        with pytest.raises(KeyReleaseDenied, match="unknown key id"):
            client.keys([bytes(16)], function="f")
    with pytest.raises(BrokerError, match="cannot reach"):
        HttpTransport(server.url, timeout_s=2).send("challenge", {})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    message=st.dictionaries(
        st.sampled_from(["request", "nonce", "suite", "public_key", "evidence"]),
        st.none() | st.integers() | st.text(max_size=30) | st.lists(st.integers(), max_size=4),
    )
)
def test_fuzzed_release_messages_never_crash(make_broker: Callable[..., KeyBroker], message: dict[str, Any]) -> None:
    b = _FUZZ_BROKER.setdefault("b", make_broker(audit_log=None))
    try:
        answer = b.release(message)
    except ProtocolError:
        return
    assert answer["body"]["verdict"] == "denied"


_FUZZ_BROKER: dict[str, KeyBroker] = {}


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import cchet
    from cchet.attest import Policy
    from cchet.attest.simulate.attester import SimulatedAttester
    from cchet.attest.simulate.authority import SimulatedAuthority
    from cchet.attest.simulate.verifier import simulation_options
    from cchet.broker.appraisal import EvidenceAppraiser
    from cchet.broker.broker import KeyBroker
    from cchet.broker.client import BrokerClient
    from cchet.broker.tickets import issue_ticket
    from cchet.broker.transport import InProcessTransport

    state, sim = Path(sys.argv[1]), sys.argv[2]
    armed = []
    def crash():
        if armed:
            os.kill(os.getpid(), signal.SIGKILL)
    auth = SimulatedAuthority.open(sim)
    broker = KeyBroker(appraiser=EvidenceAppraiser(simulation_options(auth)),
                       default_policy=Policy(allow_simulation=True), state_dir=state, before_rename=crash)
    key = broker.add_key()
    job = broker.add_key(kind="job")
    ticket = issue_ticket(job, session_id=bytes(16), function=bytes(32), key_ids=[key.key_id], tee="any", gpu=None)
    client = BrokerClient(InProcessTransport(broker), broker_id=broker.broker_id,
                          attester=SimulatedAttester(auth, "tdx"), node_id="n")
    released = client.keys([key.key_id], function=bytes(32).hex(), ticket=ticket.to_bytes())[key.key_id]
    (state.parent / "stream").write_bytes(cchet.seal(released, b"sealed before the crash"))
    (state.parent / "key_id").write_text(key.key_id.hex())
    armed.append(True)
    broker.add_key()   # killed between fsync and rename
    print("not reached")
    """
)


def test_crash_between_fsync_and_rename_loses_nothing(
    tmp_path: Path, authority: SimulatedAuthority, make_broker: Callable[..., KeyBroker]
) -> None:
    state = tmp_path / "state"
    out = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(state), str(authority.key_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert "not reached" not in out.stdout
    assert any(p.name.endswith(".tmp") for p in state.iterdir()), "the crash left the unrenamed temporary file"
    broker = make_broker(state_dir=state)
    assert len(broker.keys) == 2, "the keys stored before the crash are there, the unacknowledged one is not"
    key_id = bytes.fromhex((tmp_path / "key_id").read_text())
    entry = broker.keys.get(key_id)
    assert entry is not None
    assert cchet.unseal(entry.key, (tmp_path / "stream").read_bytes()) == b"sealed before the crash"


def test_cchet_broker_serve(tmp_path: Path, authority: SimulatedAuthority) -> None:
    exe = Path(sys.executable).with_name("cchet")
    state = tmp_path / "state"
    policy = tmp_path / "policy.toml"
    policy.write_text('name = "sim"\nallow_simulation = true\n')
    subprocess.run(
        [exe, "broker", "key", "add", "--state", state, "--policy", policy, "--out", tmp_path / "k.key"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [exe, "broker", "key", "add", "--state", state, "--kind", "job", "--out", tmp_path / "job.key"],
        check=True,
        capture_output=True,
    )
    served = broker_serve(
        "--state", state, "--policy", policy, "--audit-log", tmp_path / "audit.jsonl",
        "--simulation-keys", authority.key_dir,
    )  # fmt: skip
    with served as broker:
        key, job, stranger = read_key_file(tmp_path / "k.key"), read_key_file(tmp_path / "job.key"), os.urandom(16)

        def ticket(key_id: bytes) -> bytes:
            return issue_ticket(
                job, session_id=bytes(16), function=bytes(32), key_ids=[key_id], tee="any", gpu=None
            ).to_bytes()

        client = BrokerClient(
            HttpTransport(broker.url),
            broker_id=bytes.fromhex(broker.broker_id),
            attester=SimulatedAttester(authority, "snp"),
            node_id="n",
        )
        assert client.keys([key.key_id], function=bytes(32).hex(), ticket=ticket(key.key_id))[key.key_id] == key
        with pytest.raises(KeyReleaseDenied, match="unknown key id"):
            client.keys([stranger], function=bytes(32).hex(), ticket=ticket(stranger))
        verify = subprocess.run(
            [exe, "audit", "verify", tmp_path / "audit.jsonl", "--state", state],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0 and "6 records" in verify.stdout, verify
    assert broker.proc.returncode == 0, broker.stderr
    assert "SIMULATED" in broker.stderr
    assert base64.b64encode(cchet.hazmat.data_key_bytes(key)).decode() not in (tmp_path / "audit.jsonl").read_text()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_with_a_pinned_ca(
    tmp_path: Path, make_broker: Callable[..., KeyBroker], make_client: Callable[..., OwnedClient]
) -> None:
    import ssl

    cert, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key_file)
    broker = make_broker()
    key = broker.add_key()
    with BrokerServer(broker, "localhost", ssl_context=context) as server:
        assert server.url.startswith("https://localhost:")
        client = make_client(broker, transport=HttpTransport(server.url, cafile=str(cert)))
        assert client.keys([key.key_id], function="f")[key.key_id] == key
        with pytest.raises(BrokerError, match="cannot reach"):
            HttpTransport(server.url).send("challenge", {})  # the system CAs do not know this certificate
