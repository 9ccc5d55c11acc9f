"""Confidential actors: ``@cchet.remote`` on a class.

The actor runs in an attested worker like a task; its constructor arguments and every method call are sealed
call envelopes, its results and diagnostics come back sealed. Each envelope also carries the actor's id (16
random bytes the driver picks) and the call's sequence number: a sync actor accepts exactly the next number
(Ray delivers a caller's calls in order), an async actor each number once (its calls may start out of order),
so a method call replayed, sent to another actor, or -- for sync actors -- reordered or dropped on the way
opens nothing and runs nothing. The constructor's failure is kept sealed and returned by every
later call (an actor whose ``__init__`` raised never leaks the error into Ray).

Limits: a restarted actor (``max_restarts``) rebuilds its state from the constructor and starts its sequence
again, so calls after a restart fail with :class:`~cchet.IntegrityError`; output captured by an async actor's
call may include that of calls running concurrently.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import threading
from typing import Any

from cchet.runtime.digest import class_digest, function_digest
from cchet.runtime.envelope import seal_call
from cchet.runtime.options import ACTOR_RAY_OPTIONS, TaskOptions
from cchet.runtime.remote import prepare_call
from cchet.runtime.sealedref import Descriptor, SealedRef

__all__ = ["ActorClass", "ActorHandle"]

CONSTRUCTOR = "__init__"


def _methods(cls: type) -> dict[str, Any]:
    return {
        name: fn
        for name, fn in inspect.getmembers(cls, predicate=inspect.isfunction)
        if not (name.startswith("__") and name.endswith("__"))
    }


def _raising(method: Any, error: BaseException) -> Any:
    """A stand-in for ``method`` (same name, same identity) that raises the constructor's ``error``."""

    @functools.wraps(method)
    def raise_constructor_error(*args: Any, **kwargs: Any) -> Any:
        raise error

    return raise_constructor_error


def _actor_class_for(cls: type) -> type:
    """The Ray actor class that hosts one instance of ``cls`` (the user's class travels in its closure)."""
    from cchet.errors import IntegrityError
    from cchet.runtime import worker
    from cchet.runtime.digest import function_name

    methods = _methods(cls)
    is_async = any(inspect.iscoroutinefunction(fn) for fn in methods.values())
    digests = {name: function_digest(fn) for name, fn in methods.items()}
    ctor_digest = class_digest(cls)

    class Host:
        def __init__(self, meta: dict[str, Any], envelope: Any, *payloads: Any) -> None:
            self._instance: Any = None
            self._ctor_error: BaseException | None = None
            self._actor_id: str | None = None
            self._last = -1  # every sequence number up to this one has been accepted
            self._seen: set[int] = set()  # accepted numbers above it (async actors only)
            self._lock = threading.Lock()
            scope = worker.begin_call(ctor_digest, function_name(cls), meta, payloads)
            outcome = worker.Outcome("", "", [])

            def remember(call: dict[str, Any]) -> None:
                self._actor_id = call.get("actor_id")

            try:
                args, kwargs = worker.open_call(scope, envelope, payloads, remember)
                with worker.captured() as (out, err, logs):
                    try:
                        self._instance = cls(*args, **kwargs)
                    finally:
                        outcome.stdout, outcome.stderr, outcome.logs = out.getvalue(), err.getvalue(), logs.records
                self._ctor_outcome = worker.seal_outcome(scope, outcome, None, ok=True)
            except BaseException as e:  # kept sealed; every later call returns it
                self._ctor_error = e
                self._ctor_outcome = worker.seal_outcome(scope, worker.failed(outcome, e), ok=False)

        def _check(self, call: dict[str, Any]) -> None:
            with self._lock:
                seq = call.get("seq")
                if call.get("actor_id") != self._actor_id or not isinstance(seq, int):
                    raise IntegrityError()
                if is_async:  # calls may start out of order, but each number only once
                    if seq <= self._last or seq in self._seen:
                        raise IntegrityError()
                    self._seen.add(seq)
                    while self._last + 1 in self._seen:
                        self._last += 1
                        self._seen.discard(self._last)
                    return
                if seq != self._last + 1:
                    raise IntegrityError()
                self._last = seq

        def _target(self, method: str) -> Any:
            if method not in digests:
                raise AttributeError(f"{cls.__qualname__} has no confidential method {method!r}")
            if self._ctor_error is not None:
                return _raising(methods[method], self._ctor_error)
            return getattr(self._instance, method)

        def cchet_constructor(self) -> Any:
            return self._ctor_outcome

        def cchet_call(self, method: str, meta: dict[str, Any], envelope: Any, *payloads: Any) -> Any:
            return worker.run_call(
                self._target(method), meta, envelope, payloads, digest=digests[method], check=self._check
            )

    if is_async:

        async def cchet_call(self: Host, method: str, meta: dict[str, Any], envelope: Any, *payloads: Any) -> Any:
            target = self._target(method)
            if not inspect.iscoroutinefunction(target):
                return worker.run_call(target, meta, envelope, payloads, digest=digests[method], check=self._check)
            return await worker.run_call_async(
                target, meta, envelope, payloads, digest=digests[method], check=self._check
            )

        Host.cchet_call = cchet_call  # type: ignore[method-assign]
    Host.__name__ = Host.__qualname__ = f"cchet[{cls.__qualname__}]"
    Host.__module__ = cls.__module__
    return Host


class ActorClass:
    """What ``@cchet.remote`` returns for a class: ``.remote(*args)`` starts an actor, ``.options()`` copies."""

    def __init__(self, cls: type, options: TaskOptions) -> None:
        self._cls = cls
        self._options = options
        self._digest = class_digest(cls)
        self._ray_cls: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"confidential actor class {self._cls.__qualname__} cannot be instantiated directly; "
            f"use {self._cls.__name__}.remote(...)"
        )

    def options(self, **changes: Any) -> ActorClass:
        return ActorClass(self._cls, self._options.merged(ACTOR_RAY_OPTIONS, **changes))

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Start the actor on a qualifying attested node; ``PlacementError`` at once when none qualifies."""
        import ray

        actor_id = os.urandom(16).hex()
        session, sealed, out_key, ray_options = prepare_call(
            self._options, self._digest, args, kwargs, {"actor_id": actor_id}
        )
        if self._ray_cls is None:
            self._ray_cls = ray.remote(_actor_class_for(self._cls))
        handle = self._ray_cls.options(**ray_options).remote(sealed.meta, sealed.envelope, *sealed.payloads)
        ready = Descriptor(session.session_id, self._digest, sealed.call_id, 0, out_key.key_id)
        return ActorHandle(
            self._cls, handle, actor_id=actor_id, key_ids=sealed.key_ids, out_key_id=out_key.key_id, ready=ready
        )


class ActorHandle:
    """A confidential actor. ``handle.method.remote(*args)`` returns a :class:`~cchet.SealedRef`."""

    def __init__(
        self,
        cls: type,
        handle: Any,
        *,
        actor_id: str,
        key_ids: frozenset[bytes],
        out_key_id: bytes,
        ready: Descriptor,
    ) -> None:
        self._cls = cls
        self._ready = ready
        self._handle = handle
        self._actor_id = actor_id
        self._key_ids = key_ids
        self._out_key_id = out_key_id
        self._seq = itertools.count()
        self._seq_lock = threading.Lock()
        self._methods = {name: function_digest(fn) for name, fn in _methods(cls).items()}

    def __getattr__(self, name: str) -> _ActorMethod:
        if name.startswith("_") or name not in self.__dict__.get("_methods", {}):
            raise AttributeError(f"{self._cls.__qualname__} has no confidential method {name!r}")
        return _ActorMethod(self, name)

    def __repr__(self) -> str:
        return f"ActorHandle({self._cls.__qualname__}, actor={self._actor_id[:12]})"

    def ready(self) -> SealedRef:
        """A ref to the constructor's outcome: ``cchet.get`` returns None, or raises its error (with its output)."""
        return SealedRef(self._handle.cchet_constructor.remote(), self._ready)


class _ActorMethod:
    def __init__(self, actor: ActorHandle, name: str) -> None:
        self._actor = actor
        self._name = name

    def remote(self, *args: Any, **kwargs: Any) -> SealedRef:
        from cchet.runtime.session import current

        session = current()
        actor = self._actor
        digest = actor._methods[self._name]
        out_key = session.key(actor._out_key_id)
        with actor._seq_lock:  # numbers are handed out in submission order, as Ray delivers them
            seq = next(actor._seq)
            sealed = seal_call(
                session_id=session.session_id,
                function_digest=digest,
                job_key=session.job_key,
                output_key=out_key,
                args=args,
                kwargs=kwargs,
                extra_key_ids=actor._key_ids,
                binding={"actor_id": actor._actor_id, "seq": seq},
            )
            ref = actor._handle.cchet_call.remote(self._name, sealed.meta, sealed.envelope, *sealed.payloads)
        return SealedRef(ref, Descriptor(session.session_id, digest, sealed.call_id, 0, out_key.key_id))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"use .{self._name}.remote(...) on a confidential actor, and cchet.get() on the result")
