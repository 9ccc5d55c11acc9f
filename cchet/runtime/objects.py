"""``cchet.get`` and ``cchet.put``: open sealed results in the driver, and seal objects into Ray.

Only the data owner's driver (which holds the keys) opens results. ``cchet.get`` never calls ``ray.get``: it
reads each object as raw bytes and refuses any whose stored metadata is not ``RAW``, before anything is parsed
(:mod:`cchet.runtime.raystore`); Ray's failure objects become cchet errors. A result is then opened under the
key and the context its :class:`~cchet.SealedRef` descriptor gives (:mod:`cchet.runtime.results`), so an object
swapped in the object store, replayed from another call or session, or sealed under another key raises
:class:`~cchet.IntegrityError` instead of returning.
"""

from __future__ import annotations

import os
from typing import Any

from cchet.runtime.contexts import PUT_DIGEST
from cchet.runtime.devices import local_device
from cchet.runtime.progress import transfer
from cchet.runtime.raystore import raw_bytes, read_raw
from cchet.runtime.results import open_result
from cchet.runtime.sealedref import Descriptor, SealedRef
from cchet.runtime.values import HOST, Placement, seal_value

__all__ = ["get", "put"]


def get(refs: SealedRef | list[SealedRef], *, timeout: float | None = None, device: int | None = None) -> Any:
    """Wait for and open one :class:`~cchet.SealedRef` (or a list). Prints the task's captured output,
    re-logs its log records, and re-raises its exception (with the remote traceback as a note).

    Arrays come back where they were: NumPy arrays as NumPy arrays, and device (CuPy) arrays a task returned
    as NumPy arrays opened here, or, with ``device=N``, as CuPy arrays on this machine's GPU ``N``, opened by
    the kernel inside it (the SIMULATED GPU in a session that simulates one). Without CuPy or that GPU,
    ``device=`` raises :class:`~cchet.DeviceUnavailable`.

    Raises :class:`~cchet.IntegrityError` for anything that is not the sealed object the ref describes,
    :class:`~cchet.PlacementError` when Ray could not schedule the task, :class:`~cchet.runtime.raystore.RayFailure`
    when Ray reports the task or object failed, and ``TimeoutError`` after ``timeout`` seconds."""
    from cchet.runtime.session import current

    single = isinstance(refs, SealedRef)
    items: list[Any] = [refs] if single else list(refs)
    for r in items:
        if not isinstance(r, SealedRef):
            raise TypeError(f"cchet.get takes SealedRefs (from .remote() or cchet.put), got {type(r).__name__}")
    session = current()
    placement = HOST if device is None else Placement(local_device(device, simulated=session.simulates_gpu))
    raws = read_raw([r.ref for r in items], timeout=timeout)
    with transfer("cchet.get"):  # a progress bar past 64 MiB in interactive sessions
        values = []
        for r, raw in zip(items, raws, strict=True):
            label = f"cchet task {r.descriptor.call_id.hex()[:8]}"
            data = raw_bytes(raw, f"the result of {label}")
            values.append(open_result(data, r.descriptor, session.opening_key, replay_as=label, placement=placement))
    return values[0] if single else values


def put(value: Any) -> SealedRef:
    """Seal ``value`` under the session's job key into Ray's object store; pass the ref to tasks. Device
    (CuPy) arrays in it are sealed by the kernel on their GPU: only their ciphertext leaves it."""
    import ray

    from cchet.runtime.session import current

    session = current()
    descriptor = Descriptor(session.session_id, PUT_DIGEST, os.urandom(16), 0, session.job_key.key_id)
    with transfer("cchet.put"):
        frame = seal_value(session.job_key, value, descriptor.context())
    return SealedRef(ray.put(frame), descriptor)
