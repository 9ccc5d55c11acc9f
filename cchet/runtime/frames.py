"""The byte layouts cchet hands to Ray, and the strict readers of what comes back.

Everything a confidential call puts into Ray's object store is one ``bytes`` object, which Ray stores with
metadata ``RAW`` and returns without pickle (:mod:`cchet.runtime.raystore`). Three layouts, all integers
big-endian:

* **value frame** -- a sealed Python value: ``"CCV1" | u32 n | n x u64 length | n sealed streams`` (part 0 the
  pickle, then one part per out-of-band buffer; :mod:`cchet.runtime.values`).
* **result frame** -- what a call returns: ``"CCR1" | u8 status`` then, for ``OK``, a value frame holding the
  result and the call's diagnostics together (context ``ret``); for ``ERROR``, a value frame holding the
  diagnostics alone, the exception sealed inside (context ``diag``); for ``FAULT``, ``u8 kind | u32 length |
  UTF-8 text``: a failure before the worker held any key (the broker refused, the call could not be
  authenticated), which carries no data and is not authenticated -- its text is shown as the worker's report,
  never trusted.
* **call header** -- the clear part of a call, passed inline in Ray's task specification:
  ``"CCC1" | session id (16) | call id (16) | function (32) | u32 length | call ticket | u8 envelope slot |
  sealed envelope value frame`` (slot 255: inline, else the index of the object reference holding it).

Readers check magic, counts and lengths against the bytes they were given and nothing more: every byte inside
a sealed stream is authenticated by its tag before it is used, and nothing here is parsed beyond these lengths.
Malformed input raises :class:`~cchet.SealedFormatError` naming the field.

:func:`new_bytes` makes a ``bytes`` object whose storage cchet fills in place (sealing writes straight into it),
so results and arguments reach Ray with no extra copy (CPython only, as Ray is).
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cchet.errors import SealedFormatError

__all__ = [
    "RESULT_HEAD",
    "CallHeader",
    "Fault",
    "ResultFrame",
    "Status",
    "new_bytes",
    "read_call_header",
    "read_result_frame",
    "read_value_frame",
    "result_frame_head",
    "value_frame_layout",
    "value_frame_size",
    "write_call_header",
    "write_fault",
]

VALUE_MAGIC = b"CCV1"
RESULT_MAGIC = b"CCR1"
CALL_MAGIC = b"CCC1"
MAX_PARTS = 1 << 16
MAX_FAULT_TEXT = 16 << 10
INLINE = 255
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Status:
    OK = 0
    ERROR = 1
    FAULT = 2


class Fault:
    """What a ``FAULT`` result says went wrong before the worker held a key (the kinds are public)."""

    DENIED = 1  # the broker refused the keys: the text holds its reasons, one per line
    BROKER = 2  # the broker could not be reached, or its answer was not authentic
    INTEGRITY = 3  # the call, its code or an argument failed authentication or was not sealed cchet data
    REQUIREMENTS = 4  # the worker's appraised evidence does not meet the call's tee/gpu requirements
    INTERNAL = 5  # the worker failed in a way that involved no key (named in the text)
    RAY = 6  # Ray reported an argument's object failed ("ERROR_TYPE: message")
    KINDS = (DENIED, BROKER, INTEGRITY, REQUIREMENTS, INTERNAL, RAY)


# -- allocation ------------------------------------------------------------------------------------------

_from_size = ctypes.pythonapi.PyBytes_FromStringAndSize
_from_size.restype = ctypes.py_object
_from_size.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
_as_string = ctypes.pythonapi.PyBytes_AsString
_as_string.restype = ctypes.c_void_p
_as_string.argtypes = [ctypes.py_object]
_HUGE_FROM = 4 << 20
_MADV_HUGEPAGE = 14
_madvise: Any = None
try:
    _madvise = ctypes.CDLL(None, use_errno=True).madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
except (OSError, AttributeError):  # not Linux: no transparent huge pages to ask for
    _madvise = None


def new_bytes(n: int) -> tuple[bytes, np.ndarray]:
    """A fresh ``bytes`` object of ``n`` uninitialised bytes and a writable ``uint8`` view of its storage.

    Fill the view completely before the ``bytes`` object is used anywhere (hashed, compared, handed to Ray),
    and do not write to it afterwards: ``bytes`` are immutable to everyone else. The view keeps the object
    alive. Large ones ask for transparent huge pages, as numpy does for its arrays, which
    makes their first touch several times faster."""
    if n < 0:
        raise ValueError("size must be >= 0")
    out: bytes = _from_size(None, n)
    if n == 0:
        return out, np.empty(0, dtype=np.uint8)
    address = _as_string(out)
    if n >= _HUGE_FROM and _madvise is not None:
        start = (address + mmap.PAGESIZE - 1) & ~(mmap.PAGESIZE - 1)
        end = (address + n) & ~(mmap.PAGESIZE - 1)
        if end > start:
            _madvise(start, end - start, _MADV_HUGEPAGE)
    storage = (ctypes.c_ubyte * n).from_address(address)
    storage.owner = out  # type: ignore[attr-defined] # the view keeps the bytes (its memory) alive
    return out, np.ctypeslib.as_array(storage)


# -- value frames ----------------------------------------------------------------------------------------


def value_frame_size(part_sizes: Sequence[int]) -> int:
    return len(VALUE_MAGIC) + _U32.size + _U64.size * len(part_sizes) + sum(part_sizes)


def value_frame_layout(dest: np.ndarray, part_sizes: Sequence[int]) -> list[np.ndarray]:
    """Write a value frame's header into ``dest`` (exactly :func:`value_frame_size` bytes) and return the
    slots of its parts, in order, for the caller to seal into."""
    head = VALUE_MAGIC + _U32.pack(len(part_sizes)) + b"".join(_U64.pack(n) for n in part_sizes)
    dest[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    slots, at = [], len(head)
    for n in part_sizes:
        slots.append(dest[at : at + n])
        at += n
    if at != len(dest):
        raise ValueError("the destination is not the size of the frame")
    return slots


def read_value_frame(frame: bytes | memoryview) -> list[memoryview]:
    """The sealed parts of a value frame, as views into ``frame``; ``SealedFormatError`` when the frame's counts
    and lengths do not account for exactly its bytes."""
    data = memoryview(frame).cast("B")
    if len(data) < len(VALUE_MAGIC) + _U32.size or bytes(data[:4]) != VALUE_MAGIC:
        raise SealedFormatError("frame", "not a cchet value frame (magic)")
    (n,) = _U32.unpack_from(data, 4)
    at = 8 + n * _U64.size
    if not 1 <= n <= MAX_PARTS or len(data) < at:
        raise SealedFormatError("frame", f"part count {n} does not fit the frame")
    parts = []
    for i in range(n):
        (size,) = _U64.unpack_from(data, 8 + i * _U64.size)
        if size > len(data) - at:
            raise SealedFormatError("frame", f"part {i} runs past the end of the frame")
        parts.append(data[at : at + size])
        at += size
    if at != len(data):
        raise SealedFormatError("frame", f"{len(data) - at} bytes after the last part")
    return parts


# -- result frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultFrame:
    """A parsed result frame: ``value`` is the sealed value frame (OK, ERROR), or ``fault`` and ``text``."""

    status: int
    value: memoryview | None = None
    fault: int = 0
    text: str = ""


RESULT_HEAD = len(RESULT_MAGIC) + 1


def result_frame_head(dest: np.ndarray, ok: bool) -> np.ndarray:
    """Write a result frame's head into ``dest`` and return the slot of its value frame."""
    head = RESULT_MAGIC + bytes([Status.OK if ok else Status.ERROR])
    dest[:RESULT_HEAD] = np.frombuffer(head, dtype=np.uint8)
    return dest[RESULT_HEAD:]


def write_fault(kind: int, text: str) -> bytes:
    """A FAULT result frame (public content only: never put data or key material in ``text``)."""
    body = text.encode("utf-8", "replace")[:MAX_FAULT_TEXT]
    return RESULT_MAGIC + bytes([Status.FAULT, kind]) + _U32.pack(len(body)) + body


def read_result_frame(frame: bytes | memoryview) -> ResultFrame:
    """Split a result frame; ``SealedFormatError`` for anything malformed (the value frames inside are checked
    when they are opened)."""
    data = memoryview(frame).cast("B")
    if len(data) < 5 or bytes(data[:4]) != RESULT_MAGIC:
        raise SealedFormatError("frame", "not a cchet result frame (magic)")
    status = data[4]
    if status in (Status.OK, Status.ERROR):
        return ResultFrame(status, data[RESULT_HEAD:])
    if status == Status.FAULT:
        if len(data) < 10 or data[5] not in Fault.KINDS:
            raise SealedFormatError("frame", "malformed fault report")
        (size,) = _U32.unpack_from(data, 6)
        if size != len(data) - 10 or size > MAX_FAULT_TEXT:
            raise SealedFormatError("frame", "the fault report's length is wrong")
        text = bytes(data[10:]).decode("utf-8", "replace")
        return ResultFrame(Status.FAULT, fault=data[5], text="".join(c for c in text if c.isprintable() or c == "\n"))
    raise SealedFormatError("frame", f"unknown result status {status}")


# -- call headers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallHeader:
    """The clear part of a call. Nothing in it is secret, and nothing in it is trusted: the session id, call id
    and function name the contexts the envelope must open under; the ticket is checked by the broker; the
    envelope is sealed."""

    session_id: bytes
    call_id: bytes
    function: bytes
    ticket: bytes
    envelope_slot: int
    envelope: memoryview


def write_call_header(
    session_id: bytes, call_id: bytes, function: bytes, ticket: bytes, *, envelope: bytes | None, slot: int = INLINE
) -> bytes:
    """A call header with the sealed envelope inline (``envelope``), or in object reference ``slot``."""
    if len(session_id) != 16 or len(call_id) != 16 or len(function) != 32:
        raise ValueError("session and call ids are 16 bytes, the function identity 32")
    if not 0 <= slot <= INLINE:
        raise ValueError(f"a call carries at most {INLINE} sealed objects (large or sealed-ref arguments)")
    inline = envelope if envelope is not None else b""
    where = INLINE if envelope is not None else slot
    return b"".join((CALL_MAGIC, session_id, call_id, function, _U32.pack(len(ticket)), ticket, bytes([where]), inline))


def read_call_header(data: bytes | memoryview) -> CallHeader:
    view = memoryview(data).cast("B")
    if len(view) < 73 or bytes(view[:4]) != CALL_MAGIC:
        raise SealedFormatError("call header", "not a cchet call header (magic)")
    (n,) = _U32.unpack_from(view, 68)
    if 72 + n + 1 > len(view):
        raise SealedFormatError("call header", "the ticket runs past the end of the header")
    slot = view[72 + n]
    envelope = view[73 + n :]
    if (slot == INLINE) == (len(envelope) == 0):
        raise SealedFormatError("call header", "the envelope is neither inline nor in an object reference")
    return CallHeader(
        bytes(view[4:20]), bytes(view[20:36]), bytes(view[36:68]), bytes(view[72 : 72 + n]), slot, envelope
    )
