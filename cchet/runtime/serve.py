"""The worker side of every confidential call: one serve path for tasks, actor constructors and actor methods,
sync and async. Ray sees only :func:`entry` and the two actor hosts here -- the same for every user function and
class, exported by reference -- never the user's code, which arrives sealed (:mod:`cchet.runtime.code`).

Authenticate first, then parse. For each call, in order:

1. read the clear call header and the call ticket (lengths and fields only; nothing is trusted yet);
2. read every object the call references as raw bytes (:mod:`cchet.runtime.raystore`): an object whose stored
   metadata is not ``RAW`` is refused before anything else happens -- before any key is requested;
3. for a ``gpu='cc'`` call, find the GPU it runs on (:mod:`cchet.runtime.devices`: in CC mode, identified by
   its attestation certificate) or refuse; then ask the broker for exactly the keys the ticket names,
   presenting the ticket and naming that GPU (attesting once per process and ticket);
4. open the sealed envelope under the job key and the contexts the header's ids give; check that it names the
   same function, keys and requirements as the ticket, and that the broker's appraisal of this worker meets
   its ``tee``/``gpu`` requirements -- otherwise run nothing;
5. open the code (once per process and identity) and every argument, each only as what the envelope says it
   must be -- for a ``gpu='cc'`` call with ``device_args``, its arrays by the kernel inside the GPU;
6. run it with all its output captured per call (:mod:`cchet.runtime.capture`);
7. seal the result with the diagnostics (or the diagnostics alone, with the exception) under the output key the
   envelope names.

It returns one result frame (:mod:`cchet.runtime.frames`). Failures before step 4 completes carry no data and
return a clear ``FAULT`` report; every later failure is sealed into the diagnostics.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

from cchet.broker.client import ReleasedKeys
from cchet.broker.tickets import CallTicket, TicketError, unmet_requirements
from cchet.errors import (
    BrokerError,
    CchetError,
    DeviceUnavailable,
    IntegrityError,
    KeyReleaseDenied,
    PlacementError,
    RayFailure,
    SealedFormatError,
)
from cchet.hazmat.keys import DataKey
from cchet.runtime import capture, metrics
from cchet.runtime.code import cached, load_code
from cchet.runtime.contexts import Role, context
from cchet.runtime.devices import TaskGpu, task_gpu
from cchet.runtime.diagnostics import Outcome, failed
from cchet.runtime.envelope import CONSTRUCTOR, ActorCall, ArgSlot, CallEnvelope
from cchet.runtime.environment import worker_client
from cchet.runtime.frames import (
    INLINE,
    RESULT_HEAD,
    CallHeader,
    Fault,
    new_bytes,
    read_call_header,
    result_frame_head,
    write_fault,
)
from cchet.runtime.raystore import raw_bytes, read_raw
from cchet.runtime.results import open_result
from cchet.runtime.values import HOST, Placement, PreparedValue, open_value, prepare

__all__ = ["ActorHost", "AsyncActorHost", "entry"]

Target = Callable[[CallEnvelope, Callable[[], Any]], Callable[..., Any]]


class _Refused(Exception):
    """A failure before the worker could seal anything: becomes a FAULT report."""

    def __init__(self, kind: int, text: str) -> None:
        super().__init__(text)
        self.kind = kind
        self.text = text


def _opening_key(released: ReleasedKeys) -> Callable[[bytes, bytes], DataKey]:
    """The key to open an object the envelope says is sealed under ``expected``, whose frame names ``named``:
    the same key, or the successor the broker rotated it to; nothing else."""

    def key_for(expected: bytes, named: bytes) -> DataKey:
        if named != expected and released.seal_with.get(expected) != named:
            raise IntegrityError()
        try:
            return released[named]
        except KeyError:
            raise IntegrityError() from None

    return key_for


class _Call:
    """One call being served, from its opened envelope to its sealed result."""

    def __init__(self, header: CallHeader, envelope: CallEnvelope, out_key: DataKey) -> None:
        self.header = header
        self.envelope = envelope
        self.out_key = out_key
        self.outcome = Outcome()
        self.fn: Callable[..., Any] | None = None
        self.args: list[Any] = []
        self.kwargs: dict[str, Any] = {}
        self.value: Any = None
        self.ok = False

    def fail(self, error: BaseException) -> None:
        self.ok = False
        failed(self.outcome, error)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Capture the call's output and keep its exception (sealed, later) instead of raising it."""
        with capture.call_output() as out:
            try:
                yield
                self.ok = True
            except BaseException as e:  # every failure goes back sealed, with its traceback
                self.fail(e)
        self.outcome.stdout, self.outcome.stderr, self.outcome.logs = out.text(0), out.text(1), out.logs
        if out.overlapped:
            self.fail(CchetError(capture.OVERLAP))

    def seal(self) -> bytes:
        """The result frame: the result with the diagnostics (OK), or the diagnostics alone (ERROR), sealed
        under the output key."""
        h = self.header
        sealed: PreparedValue | None = None
        if self.ok:
            try:
                sealed = prepare((self.value, self.outcome))
            except Exception as e:  # an unpicklable result fails the call, sealed
                self.fail(e)
        if sealed is not None:
            ctx = context(Role.RET, h.session_id, h.function, h.call_id, 0)
        else:
            sealed, ctx = prepare(self.outcome), context(Role.DIAG, h.session_id, h.function, h.call_id)
        frame, view = new_bytes(RESULT_HEAD + sealed.frame_size)
        sealed.seal_into(self.out_key, ctx, result_frame_head(view, ok=self.ok))
        return frame


def _objects(refs: list[Any], what: str) -> list[memoryview]:
    """The raw bytes of ``refs`` (never deserialized); refuses any object not stored as raw bytes."""
    if not isinstance(refs, list):
        raise _Refused(Fault.INTEGRITY, f"the {what} references are not a list")
    if not refs:
        return []
    try:
        return [raw_bytes(obj, f"{what} {i}") for i, obj in enumerate(read_raw(refs))]
    except RayFailure as e:
        raise _Refused(Fault.RAY, f"{e.error_type}: {e}") from None
    except (IntegrityError, PlacementError) as e:
        raise _Refused(Fault.INTEGRITY, str(e)) from None


def _task_gpu(ticket: CallTicket) -> TaskGpu | None:
    """The GPU a ``gpu='cc'`` call runs on (None for other calls); refused, saying why, when there is none that
    may receive keys -- before any key is asked for."""
    if ticket.gpu != "cc":
        return None
    try:
        return task_gpu()
    except DeviceUnavailable as e:
        raise _Refused(Fault.REQUIREMENTS, f"this worker cannot run a gpu='cc' call: {e}") from None


def _release(header: CallHeader, ticket: CallTicket, gpu: TaskGpu | None) -> ReleasedKeys:
    try:
        return metrics.counted_release(
            worker_client(),
            ticket.key_ids,
            function=header.function.hex(),
            ticket=header.ticket,
            gpu_identity=gpu.identity if gpu else "",
        )
    except KeyReleaseDenied as e:
        raise _Refused(Fault.DENIED, "\n".join(e.reasons)) from None
    except BrokerError as e:
        raise _Refused(Fault.BROKER, str(e)) from None
    except CchetError as e:
        raise _Refused(Fault.INTERNAL, str(e)) from None


def _envelope(
    header: CallHeader, ticket: CallTicket, released: ReleasedKeys, payloads: list[memoryview], gpu: TaskGpu | None
) -> CallEnvelope:
    """Open and check the envelope: it must name what the ticket names (function, keys, requirements)."""
    try:
        sealed = header.envelope if header.envelope_slot == INLINE else payloads[header.envelope_slot]
        job_key = released[ticket.signer]
        envelope = open_value(job_key, sealed, context(Role.CALL, header.session_id, header.function, header.call_id))
    except (IntegrityError, KeyError, IndexError):
        raise _Refused(Fault.INTEGRITY, "") from None
    if not (
        isinstance(envelope, CallEnvelope)
        and envelope.function == header.function
        and tuple(envelope.key_ids) == ticket.key_ids
        and envelope.tee == ticket.tee
        and (envelope.gpu or "") == ticket.gpu
        and envelope.output_key_id in released.keys
    ):
        raise _Refused(Fault.INTEGRITY, "the call envelope does not match its ticket")
    a = released.appraised
    unmet = unmet_requirements(
        envelope.tee,
        envelope.gpu,
        tee_kind=a.tee_kind,
        gpus=a.gpus,
        gpus_affirmed=a.gpus_affirmed,
        gpu_identity=gpu.identity if gpu else "",
        gpu_identities=a.gpu_identities,
    )
    if unmet:
        raise _Refused(Fault.REQUIREMENTS, "this worker does not meet the call's requirements: " + "; ".join(unmet))
    return envelope


def _arguments(
    call: _Call, payloads: list[memoryview], released: ReleasedKeys, job_key: DataKey, gpu: TaskGpu | None
) -> None:
    h, key_for = call.header, _opening_key(released)
    placement = Placement(gpu.device, host_arrays=True) if gpu is not None and call.envelope.device_args else HOST

    def resolve(i: int, slot: ArgSlot) -> Any:
        if slot.kind == "value":
            return slot.value
        if not 0 <= slot.payload < len(payloads):
            raise IntegrityError()  # an object the envelope names is missing
        data = payloads[slot.payload]
        if slot.kind == "sealed":
            return open_value(job_key, data, context(Role.ARG, h.session_id, h.function, h.call_id, i), placement)
        if slot.kind != "ref" or slot.descriptor is None:
            raise IntegrityError()
        try:
            return open_result(data, slot.descriptor, key_for, placement=placement)
        except IntegrityError:
            raise
        except BaseException as e:
            e.add_note(f"(raised by the task that produced argument {i} of this call)")
            raise

    env = call.envelope
    call.args = [resolve(i, slot) for i, slot in enumerate(env.args)]
    call.kwargs = {name: resolve(len(env.args) + j, slot) for j, (name, slot) in enumerate(env.kwargs)}


def _open(header_bytes: bytes, payload_refs: list[Any], target: Target) -> _Call | bytes:
    """Steps 1-5: a call ready to run (or already failed, sealed), or a FAULT report."""
    try:
        try:
            header = read_call_header(header_bytes)
            ticket = CallTicket.from_bytes(header.ticket)
        except (SealedFormatError, TicketError, TypeError) as e:
            raise _Refused(Fault.INTEGRITY, f"the call header is malformed: {e}") from None
        if ticket.function != header.function or ticket.session_id != header.session_id:
            raise _Refused(Fault.INTEGRITY, "the call ticket is for another function or session")
        payloads = _objects(payload_refs, "argument object")
        gpu = _task_gpu(ticket)
        released = _release(header, ticket, gpu)
        envelope = _envelope(header, ticket, released, payloads, gpu)
        out_key = released.sealing_key(envelope.output_key_id)
    except _Refused as r:
        if r.kind == Fault.INTEGRITY:
            metrics.refusal("integrity")
        return write_fault(r.kind, r.text)
    call = _Call(header, envelope, out_key)
    job_key = released[ticket.signer]

    def load() -> Any:
        obj = cached(header.function)
        return obj if obj is not None else load_code(header.function, job_key, header.session_id)

    try:
        call.fn = target(envelope, load)
        _arguments(call, payloads, released, job_key, gpu)
    except BaseException as e:  # after the envelope opened, every failure goes back sealed
        call.fail(e)
        return call.seal()
    return call


def serve(header: bytes, payloads: list[Any], target: Target) -> bytes:
    """Serve one call of a synchronous function or method; returns its result frame."""
    call = _open(header, payloads, target)
    if isinstance(call, bytes):
        return call
    assert call.fn is not None
    with call.running():
        call.value = call.fn(*call.args, **call.kwargs)
    return call.seal()


async def serve_async(header: bytes, payloads: list[Any], target: Target) -> bytes:
    """:func:`serve` for an async actor: a coroutine method is awaited inside the call's capture."""
    call = _open(header, payloads, target)
    if isinstance(call, bytes):
        return call
    assert call.fn is not None
    with call.running():
        value = call.fn(*call.args, **call.kwargs)
        call.value = await value if inspect.isawaitable(value) else value
    return call.seal()


def _task(envelope: CallEnvelope, load: Callable[[], Any]) -> Callable[..., Any]:
    fn = load()
    if envelope.actor is not None or isinstance(fn, type) or not callable(fn):
        raise IntegrityError()
    return fn  # type: ignore[no-any-return]


def entry(header: bytes, payloads: list[Any]) -> bytes:
    """Ray's only view of a confidential task: the same function for every user function. ``header`` is the
    clear call header; ``payloads`` a list of object references (nested, so that Ray does not resolve and
    deserialize them before cchet reads them as raw bytes)."""
    return serve(header, payloads, _task)


def public_methods(cls: type) -> dict[str, Any]:
    """The methods of ``cls`` a caller may invoke remotely (not dunder methods)."""
    return {
        name: fn
        for name, fn in inspect.getmembers(cls, predicate=inspect.isfunction)
        if not (name.startswith("__") and name.endswith("__"))
    }


class ActorHost:
    """Ray's only view of a confidential actor (the same class for every user class): it opens the sealed class
    in its constructor call, and serves each method call sealed, bound to this actor and its sequence.

    A sync actor serving one call at a time accepts exactly the next sequence number (Ray delivers a caller's
    calls in order); a concurrent one (async, or ``max_concurrency > 1``) each number once. So a call replayed,
    sent to another actor, or -- for ordered actors -- reordered or dropped on the way runs nothing. The
    constructor's failure is kept sealed and returned by every later call."""

    def __init__(self, header: bytes, payloads: list[Any]) -> None:
        self._cls: type | None = None
        self._instance: Any = None
        self._ctor_error: BaseException | None = None
        self._binding: ActorCall | None = None
        self._digest = b""
        self._last = -1  # every sequence number up to this one has been accepted
        self._seen: set[int] = set()  # accepted numbers above it (concurrent actors only)
        self._lock = threading.Lock()
        self._ready = serve(header, payloads, self._constructor)

    def _constructor(self, envelope: CallEnvelope, load: Callable[[], Any]) -> Callable[..., Any]:
        cls = load()
        if envelope.actor is None or envelope.actor.method != CONSTRUCTOR or not isinstance(cls, type):
            raise IntegrityError()
        self._cls, self._binding, self._digest = cls, envelope.actor, envelope.function

        def construct(*args: Any, **kwargs: Any) -> None:
            try:
                self._instance = cls(*args, **kwargs)
            except BaseException as e:  # kept: every later call raises it
                self._ctor_error = e
                raise

        return construct

    def _admit(self, envelope: CallEnvelope) -> None:
        call, binding = envelope.actor, self._binding
        if call is None or binding is None or call.method == CONSTRUCTOR:
            raise IntegrityError()
        if call.actor_id != binding.actor_id or envelope.function != self._digest:
            raise IntegrityError()
        with self._lock:
            if binding.ordered:
                if call.seq != self._last + 1:
                    raise IntegrityError()
                self._last = call.seq
                return
            if call.seq <= self._last or call.seq in self._seen:
                raise IntegrityError()
            self._seen.add(call.seq)
            while self._last + 1 in self._seen:
                self._last += 1
                self._seen.discard(self._last)

    def _method(self, envelope: CallEnvelope, load: Callable[[], Any]) -> Callable[..., Any]:
        self._admit(envelope)
        assert self._cls is not None and envelope.actor is not None
        name = envelope.actor.method
        if name not in public_methods(self._cls):
            raise AttributeError(f"{self._cls.__qualname__} has no confidential method {name!r}")
        if self._instance is None:
            error = self._ctor_error or IntegrityError()

            def raise_constructor_error(*args: Any, **kwargs: Any) -> Any:
                raise error

            return raise_constructor_error
        return getattr(self._instance, name)  # type: ignore[no-any-return]

    def ready(self) -> bytes:
        """The constructor's result frame (None, or its error, with its output)."""
        return self._ready

    def call(self, header: bytes, payloads: list[Any]) -> bytes:
        """Serve one method call; returns its result frame."""
        return serve(header, payloads, self._method)


class AsyncActorHost(ActorHost):
    """:class:`ActorHost` for classes with ``async def`` methods: Ray runs it as an async actor."""

    async def call(self, header: bytes, payloads: list[Any]) -> bytes:  # type: ignore[override]
        return await serve_async(header, payloads, self._method)
