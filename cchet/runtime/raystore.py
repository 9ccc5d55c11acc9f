"""Ray's object store read as data and metadata, with none of Ray's deserializers: the one place cchet uses Ray
internals.

``ray.get`` picks its deserializer from the metadata stored *with* an object, so whoever can rewrite an object
(a spill file, the object store, the network) chooses whether it is unpickled. The trusted side therefore never
calls ``ray.get`` on what Ray gives back: :func:`read_raw` asks the core worker for the bytes and the metadata
(``CoreWorker.get_objects``, which ``ray.get`` itself calls before it deserializes anything) and
:func:`raw_bytes` accepts only metadata ``RAW`` -- what Ray stores for ``bytes`` -- handing back a zero-copy,
read-only view. Ray's own failure objects (worker or node died, object lost, unschedulable...) become cchet
errors named after Ray's error type, without reading their data; any other metadata is refused as
:class:`~cchet.IntegrityError`.

Sealed code is kept in the GCS's key-value store (:func:`put_blob`, :func:`get_blob`: values are bytes there,
never unpickled), where Ray keeps its own exported functions: once per session and function, so that no call
has to carry it.

The core worker's ``get_objects``, the GCS key-value store and Ray's ``ErrorType`` numbering are internals:
:data:`TESTED_RAY` names the Ray release they were checked against, :func:`check_ray` refuses a Ray whose core
worker no longer answers in the shape this module reads, and ``tests/runtime/test_raystore.py`` fails loudly
when a Ray upgrade changes them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cchet.errors import CchetError, IntegrityError, PlacementError, RayFailure

__all__ = [
    "RAW",
    "TESTED_RAY",
    "RawObject",
    "check_ray",
    "delete_blob",
    "get_blob",
    "put_blob",
    "raw_bytes",
    "read_raw",
]

log = logging.getLogger("cchet.runtime")

TESTED_RAY = "2.60"  # major.minor of the Ray release this module's internals were checked against
RAW = b"RAW"  # the metadata Ray stores with ``bytes``: returned as they are, never unpickled

# Ray's ErrorType values (ray/core/generated/common_pb2.py) that say the task or the object failed; the data
# of such an object is never read. Anything else that is not RAW is refused.
FAILURES = {
    0: "WORKER_DIED",
    1: "ACTOR_DIED",
    5: "TASK_CANCELLED",
    6: "ACTOR_CREATION_FAILED",
    7: "RUNTIME_ENV_SETUP_FAILED",
    8: "OBJECT_LOST",
    9: "OWNER_DIED",
    10: "OBJECT_DELETED",
    11: "DEPENDENCY_RESOLUTION_FAILED",
    12: "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED",
    13: "OBJECT_UNRECONSTRUCTABLE_LINEAGE_EVICTED",
    14: "OBJECT_FETCH_TIMED_OUT",
    15: "LOCAL_RAYLET_DIED",
    16: "TASK_PLACEMENT_GROUP_REMOVED",
    17: "ACTOR_PLACEMENT_GROUP_REMOVED",
    18: "TASK_UNSCHEDULABLE_ERROR",
    19: "ACTOR_UNSCHEDULABLE_ERROR",
    20: "OUT_OF_DISK_ERROR",
    21: "OBJECT_FREED",
    22: "OUT_OF_MEMORY",
    23: "NODE_DIED",
    25: "ACTOR_UNAVAILABLE",
    27: "OBJECT_UNRECONSTRUCTABLE_PUT",
    28: "OBJECT_UNRECONSTRUCTABLE_RETRIES_DISABLED",
    29: "OBJECT_UNRECONSTRUCTABLE_BORROWED",
    30: "OBJECT_UNRECONSTRUCTABLE_REF_NOT_FOUND",
    31: "OBJECT_UNRECONSTRUCTABLE_TASK_CANCELLED",
    32: "OBJECT_UNRECONSTRUCTABLE_LINEAGE_DISABLED",
    33: "WORKER_STARTUP_FAILED",
}
UNSCHEDULABLE = frozenset({18, 19})


@dataclass(frozen=True)
class RawObject:
    """One object as the store holds it: ``data`` a read-only, zero-copy view (it keeps Ray's buffer alive),
    ``metadata`` the bytes Ray stored with it. Both are untrusted."""

    data: memoryview
    metadata: bytes


_checked = False


def check_ray() -> Any:
    """The core worker of this process; ``CchetError`` when Ray is not started or its internals differ from what
    this module reads. Warns once when Ray is not the release :data:`TESTED_RAY`."""
    global _checked  # noqa: PLW0603 - checked once per process
    import ray

    worker = getattr(getattr(ray, "_private", None), "worker", None)
    core = getattr(getattr(worker, "global_worker", None), "core_worker", None)
    if core is None or not callable(getattr(core, "get_objects", None)):
        raise CchetError(
            f"cchet cannot read Ray {ray.__version__}'s object store as raw bytes (no core worker with "
            "get_objects): start Ray first, or use a Ray release cchet supports (checked against "
            f"{TESTED_RAY})"
        )
    if not _checked:
        _checked = True
        if ".".join(ray.__version__.split(".")[:2]) != TESTED_RAY:
            log.warning(
                "cchet: Ray %s is installed; cchet's raw object access was checked against Ray %s "
                "(run tests/runtime/test_raystore.py to check this release)",
                ray.__version__,
                TESTED_RAY,
            )
    return core


def read_raw(refs: Sequence[Any], timeout: float | None = None) -> list[RawObject]:
    """Wait for ``refs`` and return each object's data and metadata, deserializing nothing.

    Raises ``TimeoutError`` when ``timeout`` seconds pass first, ``CchetError`` (see :func:`check_ray`)."""
    import ray

    core = check_ray()
    timeout_ms = -1 if timeout is None else max(0, int(timeout * 1000))

    def fetch(batch: list[Any]) -> list[tuple[Any, bytes]]:
        try:
            found = core.get_objects(batch, timeout_ms)
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"the sealed objects were not ready within {timeout} s") from None
        try:
            return [(item[0], bytes(item[1] or b"")) for item in found]
        except (TypeError, IndexError, KeyError):
            raise CchetError(
                f"Ray {ray.__version__}'s core worker answered in a shape cchet does not read; cchet's raw object "
                f"access was checked against Ray {TESTED_RAY}"
            ) from None

    refs = list(refs)
    out = []
    for ref, found in zip(refs, fetch(refs), strict=True):
        if found[0] is None and not found[1]:  # not fetched because another object of the batch failed: ask alone
            found = fetch([ref])[0]  # noqa: PLW2901 - the object itself, asked for again
        data, metadata = found
        view = memoryview(data).cast("B").toreadonly() if data is not None else memoryview(b"")
        out.append(RawObject(view, metadata))
    return out


def raw_bytes(obj: RawObject, what: str) -> memoryview:
    """The data of ``obj`` if Ray stored it as raw bytes; otherwise raise without reading the data.

    Ray's failure objects raise :class:`~cchet.RayFailure` (``PlacementError`` when Ray could not schedule the task);
    anything else -- a pickled Python object, a cross-language value, a task exception, unknown metadata --
    raises :class:`~cchet.IntegrityError`: a confidential object is always raw sealed bytes, so it was replaced.
    ``what`` names the object in messages (``"the result of call 1a2b..."``).
    """
    if obj.metadata == RAW:
        return obj.data
    code = _error_code(obj.metadata)
    if code in FAILURES:
        name = FAILURES[code]
        if code in UNSCHEDULABLE:
            raise PlacementError(
                f"Ray could not schedule the task for {what} on any qualifying node (they left or died): {name}"
            )
        raise RayFailure(name, f"Ray reports {name} for {what}; nothing of it was read")
    shown = obj.metadata[:32].decode("ascii", "replace")
    raise IntegrityError(
        f"{what} is not sealed cchet data: Ray's store holds it with metadata {shown!r}, not RAW, so it was "
        "replaced or forged; nothing of it was deserialized"
    )


def _error_code(metadata: bytes) -> int | None:
    head = metadata.split(b",", 1)[0]
    return int(head) if head.isdigit() and len(head) <= 3 else None


BLOB_NAMESPACE = "cchet"


def put_blob(key: bytes, data: bytes) -> None:
    """Keep ``data`` (sealed bytes only: the GCS is not trusted for confidentiality) under ``key``."""
    from ray.experimental import internal_kv

    check_ray()
    internal_kv._internal_kv_put(key, data, overwrite=True, namespace=BLOB_NAMESPACE)


def get_blob(key: bytes) -> bytes | None:
    """The bytes kept under ``key``, or None. Untrusted: authenticate them before any use."""
    from ray.experimental import internal_kv

    check_ray()
    found = internal_kv._internal_kv_get(key, namespace=BLOB_NAMESPACE)
    return bytes(found) if isinstance(found, bytes | bytearray | memoryview) else None


def delete_blob(key: bytes) -> None:
    from ray.experimental import internal_kv

    if internal_kv._internal_kv_initialized():  # type: ignore[no-untyped-call]
        internal_kv._internal_kv_del(key, namespace=BLOB_NAMESPACE)
