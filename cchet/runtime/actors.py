"""Confidential actors: ``@cchet.remote`` on a class.

The actor runs in an attested worker like a task. Ray hosts it in one of cchet's two generic actor classes
(:class:`~cchet.runtime.serve.ActorHost`, or :class:`~cchet.runtime.serve.AsyncActorHost` when the class has
``async def`` methods); the user's class travels sealed and is opened in the constructor call. The constructor
and every method call are sealed call envelopes, their results and diagnostics come back sealed, and each
envelope carries the actor's id (16 random bytes the driver picks) and the call's sequence number, checked by
the host (see there). The constructor's failure is kept sealed and returned by every later call.

Limits: a restarted actor (``max_restarts``) rebuilds its state from the constructor and starts its sequence
again, so calls after a restart fail with :class:`~cchet.IntegrityError`. An actor that serves calls
concurrently (async, or ``max_concurrency > 1``) captures each call's ``print`` and ``logging`` output exactly;
output written straight to file descriptors while calls overlap fails those calls (:mod:`cchet.runtime.capture`).
"""

from __future__ import annotations

import inspect
import itertools
import os
import threading
from typing import Any

from cchet.runtime.envelope import CONSTRUCTOR, ActorCall
from cchet.runtime.options import ACTOR_RAY_OPTIONS, TaskOptions
from cchet.runtime.sealedref import SealedRef
from cchet.runtime.serve import public_methods
from cchet.runtime.submit import submit

__all__ = ["ActorClass", "ActorHandle"]


_hosts: dict[bool, Any] = {}


def _is_async(cls: type) -> bool:
    return any(inspect.iscoroutinefunction(fn) for fn in public_methods(cls).values())


def _host(is_async: bool) -> Any:
    """``ray.remote`` of cchet's generic actor host (made once per process and kind)."""
    if is_async not in _hosts:
        import ray

        from cchet.runtime.serve import ActorHost, AsyncActorHost

        _hosts[is_async] = ray.remote(AsyncActorHost if is_async else ActorHost)
    return _hosts[is_async]


class ActorClass:
    """What ``@cchet.remote`` returns for a class: ``.remote(*args)`` starts an actor, ``.options()`` copies."""

    def __init__(self, cls: type, options: TaskOptions) -> None:
        self._cls = cls
        self._options = options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"confidential actor class {self._cls.__qualname__} cannot be instantiated directly; "
            f"use {self._cls.__name__}.remote(...)"
        )

    def options(self, **changes: Any) -> ActorClass:
        return ActorClass(self._cls, self._options.merged(ACTOR_RAY_OPTIONS, **changes))

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Start the actor on a qualifying attested node; ``PlacementError`` at once when none qualifies."""
        is_async = _is_async(self._cls)
        ordered = not is_async and self._options.ray.get("max_concurrency", 1) == 1
        binding = ActorCall(os.urandom(16), -1, CONSTRUCTOR, ordered)
        host = _host(is_async)
        handles: list[Any] = []

        def invoke(header: bytes, payloads: list[Any], ray_options: dict[str, Any]) -> Any:
            handles.append(host.options(**ray_options).remote(header, payloads))
            return handles[0].ready.remote()

        made = submit(self._cls, self._options, args, kwargs, invoke, actor=binding)
        return ActorHandle(
            self._cls, self._options, handles[0], binding=binding, out_key_id=made.out_key_id, ready=made.ref
        )


class ActorHandle:
    """A confidential actor. ``handle.method.remote(*args)`` returns a :class:`~cchet.SealedRef`."""

    def __init__(
        self, cls: type, options: TaskOptions, handle: Any, *, binding: ActorCall, out_key_id: bytes, ready: SealedRef
    ) -> None:
        self._cls = cls
        self._options = options
        self._handle = handle
        self._binding = binding
        self._out_key_id = out_key_id
        self._ready = ready
        self._seq = itertools.count()
        self._seq_lock = threading.Lock()
        self._methods = frozenset(public_methods(cls))

    def __getattr__(self, name: str) -> _ActorMethod:
        if name.startswith("_") or name not in self.__dict__.get("_methods", ()):
            raise AttributeError(f"{self._cls.__qualname__} has no confidential method {name!r}")
        return _ActorMethod(self, name)

    def __repr__(self) -> str:
        return f"ActorHandle({self._cls.__qualname__}, actor={self._binding.actor_id.hex()[:12]})"

    def ready(self) -> SealedRef:
        """A ref to the constructor's outcome: ``cchet.get`` returns None, or raises its error (with its output)."""
        return self._ready


class _ActorMethod:
    def __init__(self, actor: ActorHandle, name: str) -> None:
        self._actor = actor
        self._name = name

    def remote(self, *args: Any, **kwargs: Any) -> SealedRef:
        actor = self._actor

        def invoke(header: bytes, payloads: list[Any], ray_options: dict[str, Any]) -> Any:
            return actor._handle.call.remote(header, payloads)

        with actor._seq_lock:  # numbers are handed out in submission order, as Ray delivers them
            call = ActorCall(actor._binding.actor_id, next(actor._seq), self._name, actor._binding.ordered)
            made = submit(actor._cls, actor._options, args, kwargs, invoke, actor=call, method_of=actor._out_key_id)
        return made.ref

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"use .{self._name}.remote(...) on a confidential actor, and cchet.get() on the result")
