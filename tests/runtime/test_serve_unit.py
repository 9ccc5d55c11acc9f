"""The worker's serve path without Ray: a real in-process broker and a SIMULATED TDX attester, and a fake object
store. The worker opens nothing it cannot tie to its envelope and ticket, and runs nothing then; it asks for keys
only with the owner's ticket and only after every object it was handed is raw sealed bytes; what decides
security (keys, requirements, the function) comes from the sealed envelope, never from the clear header."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import IntegrityError, KeyReleaseDenied, PlacementError
from cchet.attest import Policy
from cchet.attest.simulate.attester import SimulatedAttester
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.verifier import simulation_options
from cchet.broker.appraisal import EvidenceAppraiser
from cchet.broker.broker import KeyBroker
from cchet.broker.client import Appraised, BrokerClient, ReleasedKeys
from cchet.broker.tickets import CallTicket, issue_ticket
from cchet.broker.transport import InProcessTransport
from cchet.gpu.fake_device import FakeDevice
from cchet.runtime import capture, raystore, serve
from cchet.runtime.code import code_key, seal_code
from cchet.runtime.devices import TaskGpu
from cchet.runtime.envelope import call_key_ids, seal_call
from cchet.runtime.frames import read_call_header, write_call_header
from cchet.runtime.raystore import RawObject
from cchet.runtime.results import open_result
from cchet.runtime.sealedref import Descriptor

RAN: list[Any] = []


def target(a: Any, b: Any = 0) -> Any:
    RAN.append(("target", a, b))
    return a + b


def other(a: Any, b: Any = 0) -> Any:
    RAN.append(("other", a, b))
    return a - b


@dataclass
class World:
    """The data owner (broker, job key, session) and a worker's fake object store."""

    broker: KeyBroker
    job: cchet.DataKey
    session_id: bytes
    store: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    blobs: dict[bytes, bytes] = field(default_factory=dict)

    def keep(self, data: bytes, metadata: bytes = b"RAW") -> str:
        name = f"obj-{len(self.store)}"
        self.store[name] = (data, metadata)
        return name

    def call(
        self, fn: Any, *args: Any, out_key: cchet.DataKey | None = None, tee: str = "any", gpu: str | None = None
    ) -> tuple[bytes, list[str], Descriptor]:
        """What the driver hands Ray for ``fn(*args)``: header, payload refs, and the result's descriptor."""
        out = out_key or self.job
        digest, sealed_code = seal_code(self.job, self.session_id, fn)
        self.blobs[code_key(digest)] = sealed_code
        key_ids = call_key_ids(self.job, out, (), args)
        ticket = issue_ticket(self.job, session_id=self.session_id, function=digest, key_ids=key_ids, tee=tee, gpu=gpu)
        sealed = seal_call(
            session_id=self.session_id,
            function=digest,
            job_key=self.job,
            output_key=out,
            key_ids=key_ids,
            tee=tee,
            gpu=gpu,
            ticket=ticket.to_bytes(),
            args=args,
            kwargs={},
        )
        payloads = [self.keep(p) for p in sealed.payloads]
        return sealed.header, payloads, Descriptor(self.session_id, digest, sealed.call_id, 0, out.key_id)

    def open(self, frame: bytes, descriptor: Descriptor) -> Any:
        def key_for(expected: bytes, named: bytes) -> cchet.DataKey:
            if named != expected:
                raise IntegrityError()
            entry = self.broker.keys.get(expected)
            assert entry is not None
            return entry.key

        return open_result(memoryview(frame), descriptor, key_for)

    def releases(self) -> int:
        assert self.broker.audit is not None
        return sum(json.loads(x)["event"] == "release" for x in self.broker.audit.path.read_text().splitlines())


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    authority = SimulatedAuthority.open(tmp_path / "sim")
    broker = KeyBroker(
        appraiser=EvidenceAppraiser(simulation_options(authority)),
        default_policy=Policy(name="sim", allow_simulation=True),
        audit_log=tmp_path / "audit.jsonl",
    )
    w = World(broker, broker.add_key(kind="job"), os.urandom(16))
    client = BrokerClient(
        InProcessTransport(broker),
        broker_id=broker.broker_id,
        attester=SimulatedAttester.for_kind("tdx", str(authority.key_dir)),
        node_id="node-1",
    )
    monkeypatch.setattr(serve, "worker_client", lambda: client)
    monkeypatch.setattr(
        serve,
        "read_raw",
        lambda refs, timeout=None: [RawObject(memoryview(w.store[r][0]), w.store[r][1]) for r in refs],
    )
    monkeypatch.setattr(raystore, "get_blob", w.blobs.get)
    monkeypatch.setattr(capture, "install", lambda: None)  # leave pytest's own sys.stdout alone
    RAN.clear()
    yield w


def _big(fill: int) -> np.ndarray:
    return np.full(100_000, fill, dtype=np.uint8)  # large enough to travel as its own sealed object


def test_a_call_runs_and_its_result_opens_under_its_descriptor(world: World) -> None:
    header, payloads, descriptor = world.call(target, 2, 3)
    assert world.open(serve.entry(header, payloads), descriptor) == 5 and RAN == [("target", 2, 3)]


def test_small_arguments_ride_in_the_envelope_and_large_ones_apart(world: World) -> None:
    header, payloads, descriptor = world.call(target, 2, _big(1))
    assert len(payloads) == 1, "the int is inside the envelope, the 100 kB array is its own object"
    assert world.open(serve.entry(header, payloads), descriptor)[0] == 3


def _refused(world: World, frame: bytes, descriptor: Descriptor, error: type[BaseException] = IntegrityError) -> None:
    with pytest.raises(error):
        world.open(frame, descriptor)
    assert RAN == [], "the function ran"


def test_swapped_arguments_run_nothing(world: World) -> None:
    header, payloads, descriptor = world.call(target, _big(1), _big(2))
    _refused(world, serve.entry(header, payloads[::-1]), descriptor)


def test_an_argument_from_another_call_runs_nothing(world: World) -> None:
    _, first, _ = world.call(target, _big(1), _big(2))
    header, second, descriptor = world.call(target, _big(1), _big(2))
    _refused(world, serve.entry(header, [first[0], second[1]]), descriptor)


def test_a_flipped_byte_in_an_argument_runs_nothing(world: World) -> None:
    header, payloads, descriptor = world.call(target, _big(1), _big(2))
    data = bytearray(world.store[payloads[0]][0])
    data[-1] ^= 1
    _refused(world, serve.entry(header, [world.keep(bytes(data)), payloads[1]]), descriptor)


def test_a_dropped_argument_runs_nothing(world: World) -> None:
    header, payloads, descriptor = world.call(target, _big(1), _big(2))
    _refused(world, serve.entry(header, payloads[:1]), descriptor)


def test_code_that_is_not_the_named_function_runs_nothing(world: World) -> None:
    header, payloads, descriptor = world.call(target, 1, 2)
    other_header, _, _ = world.call(other, 1, 2)
    stored = code_key(read_call_header(header).function)
    world.blobs[stored] = world.blobs[code_key(read_call_header(other_header).function)]
    _refused(world, serve.entry(header, payloads), descriptor)


def test_an_object_not_stored_as_raw_bytes_is_refused_before_any_key_is_requested(world: World) -> None:
    header, payloads, descriptor = world.call(target, _big(1), _big(2))
    data, _ = world.store[payloads[0]]
    forged = world.keep(data, b"PYTHON")
    released = world.releases()
    _refused(world, serve.entry(header, [forged, payloads[1]]), descriptor)
    assert world.releases() == released, "the worker asked for keys before checking what it was handed"


def _with_ticket(header: bytes, ticket: bytes, function: bytes | None = None) -> bytes:
    h = read_call_header(header)
    return write_call_header(h.session_id, h.call_id, function or h.function, ticket, envelope=bytes(h.envelope))


def test_rewritten_key_ids_or_requirements_in_the_clear_ticket_fail_closed(world: World) -> None:
    policy_key = world.broker.add_key(policy=Policy(name="strict", allow_simulation=True, mrtd=("00" * 48,)))
    header, payloads, descriptor = world.call(target, 1, 2, out_key=policy_key)
    ticket = CallTicket.from_bytes(read_call_header(header).ticket)
    rewrites = {
        "key ids": replace(ticket, key_ids=(world.job.key_id,)),  # drop the strict key: it would not be released
        "tee": replace(ticket, tee="tdx"),
        "gpu": replace(ticket, gpu="cc"),
    }
    for what, forged in rewrites.items():
        # a ticket rewritten to gpu='cc' makes this GPU-less worker refuse before it asks for any key
        with pytest.raises((KeyReleaseDenied, PlacementError), match=r"does not verify|cannot run a gpu='cc'"):
            world.open(serve.entry(_with_ticket(header, forged.to_bytes()), payloads), descriptor)
        assert RAN == [], what


def test_a_valid_ticket_of_another_function_runs_nothing(world: World) -> None:
    header, payloads, descriptor = world.call(target, 1, 2)
    other_header, *_ = world.call(other, 1, 2)
    other_ticket = read_call_header(other_header).ticket
    _refused(world, serve.entry(_with_ticket(header, other_ticket), payloads), descriptor)
    # naming the other function in the header too: the envelope does not open under that identity
    forged = _with_ticket(header, other_ticket, read_call_header(other_header).function)
    _refused(world, serve.entry(forged, payloads), descriptor)


def _claims_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker says it runs on a GPU (as one on a GPU machine would) that its evidence does not hold."""
    monkeypatch.setattr(serve, "task_gpu", lambda: TaskGpu(FakeDevice(), "ab" * 32))


def test_the_broker_refuses_a_worker_that_does_not_meet_the_requirements(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _claims_a_gpu(monkeypatch)
    header, payloads, descriptor = world.call(target, 1, 2, gpu="cc")
    with pytest.raises(KeyReleaseDenied, match="gpu='cc'"):
        world.open(serve.entry(header, payloads), descriptor)
    header, payloads, descriptor = world.call(target, 1, 2, tee="snp")
    with pytest.raises(KeyReleaseDenied, match="tee='snp'"):
        world.open(serve.entry(header, payloads), descriptor)
    assert RAN == []


def test_the_worker_itself_refuses_when_its_appraisal_does_not_meet_the_requirements(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when a broker released (wrongly), a worker whose appraised evidence has no GPU runs no gpu='cc' call."""

    class Lenient:
        attestations = 0

        def keys(self, key_ids: Any, **request: Any) -> ReleasedKeys:
            return ReleasedKeys({world.job.key_id: world.job}, {}, "token", 1e12, True, Appraised("tdx", 0, False))

    monkeypatch.setattr(serve, "worker_client", Lenient)
    _claims_a_gpu(monkeypatch)
    header, payloads, descriptor = world.call(target, 1, 2, gpu="cc")
    _refused(world, serve.entry(header, payloads), descriptor, PlacementError)


def test_a_result_sealed_under_another_key_than_the_descriptor_names_is_refused(world: World) -> None:
    """The driver opens a result only under its descriptor's key: one sealed under the job key instead of the
    stricter key the call asked for (with the right contexts) is refused."""
    strict = world.broker.add_key(policy=Policy(name="strict2", allow_simulation=True))
    header, payloads, descriptor = world.call(target, 1, 2, out_key=strict)
    assert world.open(serve.entry(header, payloads), descriptor) == 3
    under_job = world.call(target, 1, 2)
    frame = serve.entry(*under_job[:2])
    forged = Descriptor(descriptor.session_id, under_job[2].producer_digest, under_job[2].call_id, 0, strict.key_id)
    with pytest.raises(IntegrityError):
        world.open(frame, forged)
