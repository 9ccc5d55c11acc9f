"""The worker side of a confidential call: attest, open, check, run, seal -- nothing in the clear.

A worker process learns its broker from its environment (``CCHET_BROKER_URL`` and the pinned
``CCHET_BROKER_ID``; in simulation ``CCHET_SIMULATE`` and ``CCHET_SIM_KEY_DIR``), attests once per
process and key set through :class:`~cchet.broker.client.BrokerClient`, and then for each call:

1. opens the call envelope under the context its own function digest gives (a different function, call,
   session or a modified envelope opens nothing, and nothing runs);
2. opens every inline argument under its ``arg`` context and every sealed-ref argument under the context of
   its descriptor (a swapped, replayed or modified object fails, and nothing runs);
3. runs the function with stdout, stderr and ``logging`` captured;
4. seals the result (``ret``) and the diagnostics -- output, log records, the exception -- (``diag``).

It returns ``(sealed result or None, sealed diagnostics)``. Errors before any key is held (the broker
refused, or is unreachable) carry no data and propagate as they are.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cchet.broker.client import BrokerClient, ReleasedKeys
from cchet.errors import CchetError, IntegrityError
from cchet.hazmat.keys import DataKey
from cchet.runtime import metrics
from cchet.runtime.contexts import PUT_DIGEST, Role, context
from cchet.runtime.digest import function_digest, function_name
from cchet.runtime.sealedref import Descriptor
from cchet.runtime.values import SealedValue, key_ids_of, open_value, seal_value

__all__ = ["ENV", "Outcome", "run_call", "worker_client"]

ENV = {
    "broker_url": "CCHET_BROKER_URL",
    "broker_id": "CCHET_BROKER_ID",
    "simulate": "CCHET_SIMULATE",
    "sim_key_dir": "CCHET_SIM_KEY_DIR",
    "scope": "CCHET_SCOPE",
}

_client_lock = threading.Lock()
_clients: dict[tuple[str, str], BrokerClient] = {}


def node_attester() -> Any:
    """This node's attester: SIMULATED when ``CCHET_SIMULATE`` names a kind, else the local TEE's."""
    kind = os.environ.get(ENV["simulate"])
    if kind:
        from cchet.attest.simulate.attester import SimulatedAttester

        return SimulatedAttester.for_kind(kind, os.environ.get(ENV["sim_key_dir"]))
    from cchet.attest.attesters.local import local_attester

    return local_attester()


def worker_client() -> BrokerClient:
    """This process's broker client, made once from the environment Ray gave the worker."""
    url, broker_id = os.environ.get(ENV["broker_url"]), os.environ.get(ENV["broker_id"])
    if not url or not broker_id:
        raise CchetError(
            "this Ray worker has no cchet broker configured (CCHET_BROKER_URL / CCHET_BROKER_ID); "
            "confidential tasks are submitted through @cchet.remote after cchet.init()"
        )
    with _client_lock:
        client = _clients.get((url, broker_id))
        if client is None:
            import ray

            from cchet.broker.transport import HttpTransport

            client = BrokerClient(
                HttpTransport(url),
                broker_id=bytes.fromhex(broker_id),
                attester=node_attester(),
                node_id=ray.get_runtime_context().get_node_id(),
            )
            _clients[(url, broker_id)] = client
        return client


@dataclass
class Outcome:
    """What the diagnostics of a call hold."""

    stdout: str
    stderr: str
    logs: list[tuple[str, int, str]]
    error: bytes | None = None
    traceback: str = ""


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO, _Capture]]:
    """Redirect stdout, stderr and every ``logging`` record of the task into memory (nothing reaches Ray's
    log files)."""
    out, err, handler = io.StringIO(), io.StringIO(), _Capture()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(logging.NOTSET)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err, handler
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


def _keyring(released: ReleasedKeys) -> Callable[[bytes], DataKey]:
    def lookup(key_id: bytes) -> DataKey:
        try:
            return released[key_id]
        except KeyError:
            raise IntegrityError() from None

    return lookup


def _open_any(key_for: Callable[[bytes], DataKey], parts: SealedValue, ctx: bytes) -> Any:
    ids = key_ids_of(parts) if isinstance(parts, list) and parts else set()
    if len(ids) != 1:
        raise IntegrityError()
    return open_value(key_for(next(iter(ids))), parts, ctx)


def _payload_key_ids(payloads: tuple[Any, ...]) -> set[bytes]:
    ids: set[bytes] = set()
    for p in payloads:
        if isinstance(p, tuple) and len(p) == 2:  # a producer's (result, diagnostics)
            for part in p:
                if isinstance(part, list) and part:
                    ids |= key_ids_of(part)
        elif isinstance(p, list) and p:
            ids |= key_ids_of(p)
    return ids


@dataclass
class CallScope:
    """One call being served: its ids, the keys released for it, and where its outputs go."""

    digest: bytes
    session_id: bytes
    call_id: bytes
    key_for: Callable[[bytes], DataKey]
    out_key: DataKey

    def ret_context(self) -> bytes:
        return context(Role.RET, self.session_id, self.digest, self.call_id, 0)

    def diag_context(self) -> bytes:
        return context(Role.DIAG, self.session_id, self.digest, self.call_id)


def begin_call(digest: bytes, name: str, meta: dict[str, Any], payloads: tuple[Any, ...]) -> CallScope:
    """Get the keys for a call (attesting when this process holds none for this key set)."""
    key_ids = {bytes.fromhex(k) for k in meta["key_ids"]} | _payload_key_ids(payloads)
    released = metrics.counted_release(worker_client(), key_ids, function=name, data_ids=meta.get("data_ids", ()))
    return CallScope(
        digest,
        bytes.fromhex(meta["session_id"]),
        bytes.fromhex(meta["call_id"]),
        _keyring(released),
        released.sealing_key(bytes.fromhex(meta["output_key_id"])),
    )


def open_call(
    scope: CallScope,
    envelope: SealedValue,
    payloads: tuple[Any, ...],
    check: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Open the envelope under this code's own digest, run ``check`` on it, then open every argument."""
    call = _open_any(scope.key_for, envelope, context(Role.CALL, scope.session_id, scope.digest, scope.call_id))
    if call.get("function_digest") != scope.digest.hex():
        raise IntegrityError()
    if check is not None:
        check(call)
    return _arguments(call, payloads, scope.key_for, (scope.session_id, scope.digest, scope.call_id))


def seal_outcome(scope: CallScope, outcome: Outcome, value: Any = None, *, ok: bool) -> Any:
    """``(sealed result | None, sealed diagnostics)`` -- what a call returns through Ray."""
    result = seal_value(scope.out_key, value, scope.ret_context()) if ok else None
    return result, seal_value(scope.out_key, outcome, scope.diag_context())


def failed(outcome: Outcome, error: BaseException) -> Outcome:
    outcome.error, outcome.traceback = _pickle_error(error), "".join(traceback.format_exception(error))
    return outcome


def run_call(
    fn: Callable[..., Any],
    meta: dict[str, Any],
    envelope: SealedValue,
    payloads: tuple[Any, ...],
    *,
    digest: bytes | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Execute one confidential call of ``fn``; returns ``(sealed result | None, sealed diagnostics)``.

    ``digest`` is the identity the envelope must name (default: ``fn``'s own function digest); ``check``
    inspects the opened envelope before any argument is opened (actors check their id and call sequence).
    """
    scope = begin_call(digest or function_digest(fn), function_name(fn), meta, payloads)
    outcome = Outcome("", "", [])
    try:
        args, kwargs = open_call(scope, envelope, payloads, check)
        with captured() as (out, err, logs):
            try:
                value = fn(*args, **kwargs)
            finally:
                outcome.stdout, outcome.stderr, outcome.logs = out.getvalue(), err.getvalue(), logs.records
        return seal_outcome(scope, outcome, value, ok=True)
    except BaseException as e:  # every failure goes back sealed, with its traceback
        return seal_outcome(scope, failed(outcome, e), ok=False)


async def run_call_async(
    fn: Callable[..., Any],
    meta: dict[str, Any],
    envelope: SealedValue,
    payloads: tuple[Any, ...],
    *,
    digest: bytes,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """:func:`run_call` for coroutine functions (async actors). Output captured while it awaits may include
    that of concurrent calls of the same actor."""
    scope = begin_call(digest, function_name(fn), meta, payloads)
    outcome = Outcome("", "", [])
    try:
        args, kwargs = open_call(scope, envelope, payloads, check)
        with captured() as (out, err, logs):
            try:
                value = await fn(*args, **kwargs)
            finally:
                outcome.stdout, outcome.stderr, outcome.logs = out.getvalue(), err.getvalue(), logs.records
        return seal_outcome(scope, outcome, value, ok=True)
    except BaseException as e:  # every failure goes back sealed, with its traceback
        return seal_outcome(scope, failed(outcome, e), ok=False)


def _arguments(
    call: dict[str, Any],
    payloads: tuple[Any, ...],
    key_for: Callable[[bytes], DataKey],
    call_scope: tuple[bytes, bytes, bytes],
) -> tuple[list[Any], dict[str, Any]]:
    session_id, digest, call_id = call_scope

    def resolve(slot: int, spec: dict[str, Any]) -> Any:
        if spec["kind"] == "value":
            return spec["value"]
        payload = payloads[spec["payload"]]
        if spec["kind"] == "inline":
            return _open_any(key_for, payload, context(Role.ARG, session_id, digest, call_id, slot))
        descriptor = Descriptor.from_json(spec["descriptor"])
        if descriptor.producer_digest == PUT_DIGEST:
            return _open_any(key_for, payload, descriptor.context())
        if not (isinstance(payload, tuple) and len(payload) == 2):
            raise IntegrityError()
        result, diag = payload
        if result is None:
            producer_diag = context(Role.DIAG, descriptor.session_id, descriptor.producer_digest, descriptor.call_id)
            error = _unpickle_error(_open_any(key_for, diag, producer_diag))
            error.add_note(f"(raised by the task that produced argument {slot} of this call)")
            raise error
        return _open_any(key_for, result, descriptor.context())

    args = [resolve(i, spec) for i, spec in enumerate(call["args"])]
    kwargs = {
        name: resolve(len(call["args"]) + j, spec) for j, (name, spec) in enumerate(sorted(call["kwargs"].items()))
    }
    return args, kwargs


def _pickle_error(error: BaseException) -> bytes:
    try:
        return pickle.dumps(error)
    except Exception:  # unpicklable exception: keep its type name and message
        return pickle.dumps(RuntimeError(f"{type(error).__qualname__}: {error}"))


def _unpickle_error(outcome: Any) -> BaseException:
    if isinstance(outcome, Outcome) and outcome.error is not None:
        error = pickle.loads(outcome.error)  # noqa: S301 - sealed by a holder of the key
        if isinstance(error, BaseException):
            if outcome.traceback:
                error.add_note("remote traceback (sealed end to end):\n" + outcome.traceback)
            return error
    return IntegrityError()


def replay_outcome(outcome: Outcome, where: str) -> BaseException | None:
    """In the driver: print the task's output, re-log its records, and return its exception (if any)."""
    if outcome.stdout:
        sys.stdout.write(outcome.stdout)
    if outcome.stderr:
        sys.stderr.write(outcome.stderr)
    for name, level, message in outcome.logs:
        logging.getLogger(name).log(level, "(%s) %s", where, message)
    if outcome.error is None:
        return None
    return _unpickle_error(outcome)
