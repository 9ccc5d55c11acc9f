"""The driver side of every confidential call: one submit path for tasks, actor constructors and actor methods.

:func:`submit` finds the qualifying nodes (``PlacementError`` at once when there are none), picks the output key
for the call's policy, makes sure the code is sealed and stored for this session, gets the session's call
ticket for the function, its key set and its requirements, seals the call, puts its large sealed arguments into
the object store, and hands Ray the generic entry point with two arguments: the clear call header (inline in
the task specification) and a list of object references (nested, so that Ray does not resolve them).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cchet.runtime.envelope import ActorCall, call_key_ids, seal_call
from cchet.runtime.options import TaskOptions
from cchet.runtime.sealedref import Descriptor, SealedRef

__all__ = ["Submitted", "placement_options", "submit"]

Invoke = Callable[[bytes, list[Any], dict[str, Any]], Any]
PLACEMENT_CACHE = 1024
# glibc's allocator in cchet's worker processes: buffers up to 32 MiB come from the heap and freed memory up to
# 128 MiB stays there, so a call's sealed and opened buffers reuse pages instead of faulting fresh ones in (every
# call allocates a few; fresh pages cost ~1 ms per MiB-sized buffer on a VM). Memory freed below those sizes is
# kept by the process, not returned to the system.
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}

_lock = threading.Lock()
_placements: dict[tuple[Any, ...], tuple[TaskOptions, dict[str, Any]]] = {}


@dataclass(frozen=True)
class Submitted:
    """A submitted call: its result, and the output key and key set it was sealed for."""

    ref: SealedRef
    out_key_id: bytes
    key_ids: tuple[bytes, ...]


def placement_options(session: Any, opts: TaskOptions, nodes: list[str], key_ids: tuple[bytes, ...]) -> dict[str, Any]:
    """Ray options for a confidential task or actor: the user's Ray options, the qualifying nodes as a label
    selector, SPREAD when asked, and a ``runtime_env`` whose cchet part is distinct per key scope (so Ray never
    runs two scopes in one worker process), with :data:`MALLOC_TUNING` unless the user's own ``env_vars`` set
    those variables."""
    scope = hashlib.sha256(b"".join(key_ids) + (opts.policy.policy_id.encode() if opts.policy else b""))
    ray_options = dict(opts.ray)
    user_env = dict(ray_options.pop("runtime_env", None) or {})
    env = {**MALLOC_TUNING, **user_env.get("env_vars", {}), **session.worker_env(scope.digest())}
    user_env["env_vars"] = env
    ray_options["runtime_env"] = user_env
    ray_options["label_selector"] = {"ray.io/node-id": f"in({','.join(nodes)})"}
    if opts.spread:
        ray_options["scheduling_strategy"] = "SPREAD"
    return ray_options


def _placement(session: Any, opts: TaskOptions, nodes: list[str], key_ids: tuple[bytes, ...]) -> dict[str, Any]:
    """:func:`placement_options`, the same dict object for the same session, options, nodes and keys (so that
    Ray's per-options work is done once; callers must not change it)."""
    slot = (session.session_id, id(opts), tuple(nodes), key_ids)
    with _lock:
        found = _placements.get(slot)
        if found is not None and found[0] is opts:  # holding opts keeps its id from being reused
            return found[1]
    made = placement_options(session, opts, nodes, key_ids)
    with _lock:
        if len(_placements) >= PLACEMENT_CACHE:
            _placements.clear()
        _placements[slot] = (opts, made)
    return made


def submit(
    target: Any,
    opts: TaskOptions,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    invoke: Invoke,
    *,
    actor: ActorCall | None = None,
    method_of: bytes | None = None,
) -> Submitted:
    """Seal and submit one call of ``target`` (a function, or an actor class); returns its :class:`Submitted`.

    ``invoke(header, payload refs, ray options)`` hands it to Ray. Tasks and actor constructors are placed by
    ``opts``; an actor's method calls (``method_of``: the actor's output key id) go where the actor is.
    """
    import ray

    from cchet.runtime.session import current, require_placement

    session = current()
    session.check_tenancy()
    if method_of is None:
        nodes = require_placement(opts.tee, opts.gpu)
        out_key = session.key_for_policy(opts.policy)
    else:
        nodes, out_key = [], session.key(method_of)
    function = session.function_identity(target)
    key_ids = call_key_ids(session.job_key, out_key, opts.keys, (*args, *kwargs.values()))
    ticket = session.ticket(function, key_ids, opts.tee, opts.gpu)
    sealed = seal_call(
        session_id=session.session_id,
        function=function,
        job_key=session.job_key,
        output_key=out_key,
        key_ids=key_ids,
        tee=opts.tee,
        gpu=opts.gpu,
        ticket=ticket,
        args=args,
        kwargs=kwargs,
        actor=actor,
        device_args=opts.device_args,
    )
    payloads = [ray.put(p) if isinstance(p, bytes) else p for p in sealed.payloads]
    ray_options = _placement(session, opts, nodes, key_ids) if method_of is None else {}
    ref = invoke(sealed.header, payloads, ray_options)
    descriptor = Descriptor(session.session_id, function, sealed.call_id, 0, out_key.key_id)
    return Submitted(SealedRef(ref, descriptor), out_key.key_id, key_ids)
