"""``@cchet.remote``: Ray remote functions whose code, arguments, results, output and errors are sealed.

``cchet.remote`` composes Ray's public API: every confidential task is ``ray.remote(entry).options(...)`` where
``entry`` is cchet's one generic entry point (:func:`cchet.runtime.serve.entry`), so Ray never sees the user's
function -- it travels sealed (:mod:`cchet.runtime.code`). The user's function is wrapped in a handle whose
``.remote()`` seals the call and returns a :class:`~cchet.SealedRef`; ``functools.wraps`` goes on that handle
only. Calling the handle directly raises ``TypeError`` pointing to ``.remote()``; ``.options()`` returns a new
handle; options are validated when the decorator is applied.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from cchet.runtime.options import ACTOR_RAY_OPTIONS, RAY_OPTIONS, TaskOptions, validate_options
from cchet.runtime.sealedref import SealedRef
from cchet.runtime.submit import submit

__all__ = ["RemoteFunction", "remote"]

_lock = threading.Lock()
_entries: dict[int | None, Any] = {}
_by_placement: dict[int, tuple[dict[str, Any], Any]] = {}
_OPTION_CACHE = 1024


def _entry(max_calls: int | None, ray_options: dict[str, Any]) -> Any:
    """``ray.remote(entry)`` (one per ``max_calls``, which Ray takes only there) with ``ray_options`` applied."""
    with _lock:
        if max_calls not in _entries:
            import ray

            from cchet.runtime.serve import entry

            _entries[max_calls] = ray.remote(entry) if max_calls is None else ray.remote(max_calls=max_calls)(entry)
        return _entries[max_calls].options(**ray_options)


def _invoke(header: bytes, payloads: list[Any], ray_options: dict[str, Any]) -> Any:
    """Submit to Ray. ``ray_options`` is the same dict object for the same placement (:mod:`submit`), so the
    options Ray validates are made once per placement."""
    with _lock:
        found = _by_placement.get(id(ray_options))
    if found is None or found[0] is not ray_options:
        options = {k: v for k, v in ray_options.items() if k != "max_calls"}
        max_calls = ray_options.get("max_calls")
        if options.get("num_gpus") and max_calls is None:
            max_calls = 0  # unlimited: keep GPU workers (and their attestation) across calls
        found = (ray_options, _entry(max_calls, options))
        with _lock:
            if len(_by_placement) >= _OPTION_CACHE:
                _by_placement.clear()
            _by_placement[id(ray_options)] = found
    return found[1].remote(header, payloads)


class RemoteFunction:
    """The handle ``@cchet.remote`` returns. Use ``.remote(*args, **kwargs)`` and ``.options(**changes)``."""

    def __init__(self, fn: Callable[..., Any], options: TaskOptions) -> None:
        self._fn = fn
        self._options = options
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"confidential function {self._fn.__qualname__} cannot be called directly; "
            f"use {self._fn.__name__}.remote(...) and cchet.get() on the SealedRef it returns"
        )

    def options(self, **changes: Any) -> RemoteFunction:
        """A new handle with ``changes`` applied (validated now); this one is unchanged."""
        return RemoteFunction(self._fn, self._options.merged(**changes))

    def remote(self, *args: Any, **kwargs: Any) -> SealedRef:
        """Seal the call and submit it; returns a :class:`~cchet.SealedRef` to the sealed result.

        Raises :class:`~cchet.PlacementError` at once when no attested node qualifies.
        """
        return submit(self._fn, self._options, args, kwargs, _invoke).ref


def remote(*args: Any, **options: Any) -> Any:
    """Make a function a confidential Ray task: ``@cchet.remote`` or ``@cchet.remote(tee="tdx", ...)``.

    cchet options: ``tee`` ("tdx", "snp", "sgx", "any"), ``gpu`` (None or "cc"), ``policy`` (a
    :class:`~cchet.Policy` the worker must also satisfy), ``keys`` (extra keys it may receive). Ray
    options (``num_cpus``, ``num_gpus``, ``memory``, ``resources``, ``max_retries``, ...) pass through.
    Unknown options raise ``TypeError`` listing the valid ones. On a class, ``@cchet.remote`` makes a
    confidential actor (see :mod:`cchet.runtime.actors`); Ray actor options (``max_concurrency``, ...) apply.
    """
    if len(args) == 1 and not options and callable(args[0]):
        return _wrap(args[0], {})
    if args:
        raise TypeError("use @cchet.remote or @cchet.remote(option=value, ...)")
    validate_options(options, RAY_OPTIONS | ACTOR_RAY_OPTIONS)  # fail now, before anything is decorated
    return lambda fn: _wrap(fn, options)


def _wrap(fn: Any, options: dict[str, Any]) -> Any:
    if isinstance(fn, type):
        from cchet.runtime.actors import ActorClass

        return ActorClass(fn, validate_options(options, ACTOR_RAY_OPTIONS))
    if not callable(fn):
        raise TypeError(f"cchet.remote needs a function or a class, got {type(fn).__name__}")
    return RemoteFunction(fn, validate_options(options))
