"""``@cchet.remote``: Ray remote functions whose arguments, results, output and errors are sealed.

``cchet.remote`` composes Ray's public API: it builds ``ray.remote(entry).options(...)`` where ``entry`` is a
small function of its own (so Ray reads *its* signature), and wraps the user's function in a handle whose
``.remote()`` seals the call and returns a :class:`~cchet.SealedRef`. ``functools.wraps`` goes on that handle
only. Calling the handle directly raises ``TypeError`` pointing to ``.remote()``; ``.options()`` returns a new
handle; options are validated when the decorator is applied.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from cchet.runtime.digest import function_digest
from cchet.runtime.envelope import SealedCall, seal_call
from cchet.runtime.options import ACTOR_RAY_OPTIONS, RAY_OPTIONS, TaskOptions, validate_options
from cchet.runtime.sealedref import Descriptor, SealedRef

__all__ = ["RemoteFunction", "remote"]


def _entry_for(fn: Callable[..., Any]) -> Callable[..., Any]:
    from cchet.runtime.worker import run_call

    def entry(meta: dict[str, Any], envelope: Any, *payloads: Any) -> Any:
        return run_call(fn, meta, envelope, payloads)

    entry.__name__ = getattr(fn, "__name__", "task")
    entry.__qualname__ = f"cchet[{getattr(fn, '__qualname__', entry.__name__)}]"
    entry.__module__ = getattr(fn, "__module__", __name__)
    return entry


class RemoteFunction:
    """The handle ``@cchet.remote`` returns. Use ``.remote(*args, **kwargs)`` and ``.options(**changes)``."""

    def __init__(self, fn: Callable[..., Any], options: TaskOptions) -> None:
        self._fn = fn
        self._options = options
        self._digest = function_digest(fn)
        self._ray_fns: dict[int | None, Any] = {}
        self._ray_opts: dict[tuple[Any, ...], Any] = {}
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"confidential function {self._fn.__qualname__} cannot be called directly; "
            f"use {self._fn.__name__}.remote(...) and cchet.get() on the SealedRef it returns"
        )

    def options(self, **changes: Any) -> RemoteFunction:
        """A new handle with ``changes`` applied (validated now); this one is unchanged."""
        return RemoteFunction(self._fn, self._options.merged(**changes))

    def _ray_function(self, max_calls: int | None) -> Any:
        """``ray.remote(entry)``, one per ``max_calls`` (Ray takes it only there, not in ``.options()``)."""
        if max_calls not in self._ray_fns:
            import ray

            entry = _entry_for(self._fn)
            self._ray_fns[max_calls] = (
                ray.remote(entry) if max_calls is None else ray.remote(max_calls=max_calls)(entry)
            )
        return self._ray_fns[max_calls]

    def _ray_options(self, max_calls: int | None, ray_options: dict[str, Any]) -> Any:
        """``ray_fn.options(...)``, kept per distinct set of options (Ray validates them on every call)."""
        signature = (max_calls, repr(sorted(ray_options.items())))
        cached = self._ray_opts.get(signature)
        if cached is None:
            cached = self._ray_opts[signature] = self._ray_function(max_calls).options(**ray_options)
        return cached

    def remote(self, *args: Any, **kwargs: Any) -> SealedRef:
        """Seal the call and submit it; returns a :class:`~cchet.SealedRef` to the sealed result.

        Raises :class:`~cchet.PlacementError` at once when no attested node qualifies.
        """
        session, sealed, out_key, ray_options = prepare_call(self._options, self._digest, args, kwargs)
        max_calls = ray_options.pop("max_calls", None)
        if ray_options.get("num_gpus") and max_calls is None:
            max_calls = 0  # unlimited: keep GPU workers (and their attestation) across calls
        ref = self._ray_options(max_calls, ray_options).remote(sealed.meta, sealed.envelope, *sealed.payloads)
        return SealedRef(ref, Descriptor(session.session_id, self._digest, sealed.call_id, 0, out_key.key_id))


def prepare_call(
    opts: TaskOptions,
    digest: bytes,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    binding: dict[str, Any] | None = None,
) -> tuple[Any, SealedCall, Any, dict[str, Any]]:
    """What every confidential submission does first: find qualifying nodes (``PlacementError`` at once when
    there are none), pick the output key for the call's policy, seal the call, and build Ray's options.
    Returns (session, sealed call, output key, Ray options)."""
    from cchet.runtime.session import current, require_placement

    session = current()
    nodes = require_placement(opts.tee, opts.gpu)
    out_key = session.key_for_policy(opts.policy)
    sealed = seal_call(
        session_id=session.session_id,
        function_digest=digest,
        job_key=session.job_key,
        output_key=out_key,
        args=args,
        kwargs=kwargs,
        extra_key_ids=opts.keys,
        binding=binding,
    )
    return session, sealed, out_key, placement_options(session, opts, nodes, sealed.key_ids)


def placement_options(session: Any, opts: TaskOptions, nodes: list[str], key_ids: frozenset[bytes]) -> dict[str, Any]:
    """Ray options for a confidential task or actor: the user's Ray options, the qualifying nodes as a label
    selector, SPREAD when asked, and a ``runtime_env`` whose cchet part is distinct per key scope (so Ray never
    runs two scopes in one worker process)."""
    scope = hashlib.sha256(b"".join(sorted(key_ids)) + (opts.policy.policy_id.encode() if opts.policy else b""))
    ray_options = dict(opts.ray)
    user_env = dict(ray_options.pop("runtime_env", None) or {})
    env = dict(user_env.get("env_vars", {}))
    env.update(session.worker_env(scope.digest()))
    user_env["env_vars"] = env
    ray_options["runtime_env"] = user_env
    ray_options["label_selector"] = {"ray.io/node-id": f"in({','.join(nodes)})"}
    if opts.spread:
        ray_options["scheduling_strategy"] = "SPREAD"
    return ray_options


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
    return RemoteFunction(fn, validate_options(options))
