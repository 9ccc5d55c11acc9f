"""The TDX confidential-computing event log (ACPI CCEL), and its replay against the RTMRs of a TD quote.

The log is a TCG PC Client crypto-agile event log (TCG PFP specification): a first event in the legacy SHA-1
format whose data is the ``Spec ID Event03`` structure listing the digest algorithms and their sizes, then
``TCG_PCR_EVENT2`` records (index, type, digests, data). In a CC event log the index is the CC measurement
register: 1..4 extend RTMR0..RTMR3 (UEFI ``EFI_CC_MEASUREMENT_PROTOCOL``, TDX mapping). The log area
is padded to its ACPI-declared size with 0xFF; the padding is kept so that ``serialize`` is the exact inverse.

Replay recomputes each RTMR as ``SHA-384(rtmr || digest)`` over the events in order (EV_NO_ACTION events
extend nothing) and compares with the quote; it says what the log claims, not that the log is complete.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cchet.attest.formats.cursor import Cursor
from cchet.errors import EvidenceFormatError

__all__ = [
    "ALG_SHA384",
    "EV_NO_ACTION",
    "CcEvent",
    "CcEventLog",
    "parse_ccel",
    "replay_rtmrs",
    "rtmr_mismatches",
    "serialize_ccel",
]

EV_NO_ACTION = 0x00000003
ALG_SHA384 = 0x000C
SPEC_ID_SIGNATURE = b"Spec ID Event03\0"


@dataclass(frozen=True)
class CcEvent:
    """One ``TCG_PCR_EVENT2``: CC MR index, event type, (algorithm id, digest) pairs, event data."""

    mr_index: int
    event_type: int
    digests: tuple[tuple[int, bytes], ...]
    data: bytes

    def digest(self, alg: int) -> bytes | None:
        for a, d in self.digests:
            if a == alg:
                return d
        return None

    def to_bytes(self) -> bytes:
        head = struct.pack("<III", self.mr_index, self.event_type, len(self.digests))
        body = b"".join(struct.pack("<H", a) + d for a, d in self.digests)
        return head + body + struct.pack("<I", len(self.data)) + self.data


@dataclass(frozen=True)
class CcEventLog:
    """The header event (legacy format, holding the Spec ID event), the events, and the trailing padding."""

    header_index: int
    header_type: int
    header_digest: bytes
    header_data: bytes
    algorithms: tuple[tuple[int, int], ...]
    events: tuple[CcEvent, ...]
    padding: bytes = b""

    def to_bytes(self) -> bytes:
        head = struct.pack("<II", self.header_index, self.header_type) + self.header_digest
        head += struct.pack("<I", len(self.header_data)) + self.header_data
        return head + b"".join(e.to_bytes() for e in self.events) + self.padding


def _spec_algorithms(data: bytes, base: int) -> tuple[tuple[int, int], ...]:
    cur = Cursor(data, base=base)
    if cur.take(16, "spec_id.signature") != SPEC_ID_SIGNATURE:
        raise EvidenceFormatError("first event is not a Spec ID Event03", offset=base, field="spec_id.signature")
    cur.take(8, "spec_id.versions")
    count = cur.u32("spec_id.number_of_algorithms")
    if count == 0 or count > 16:
        raise EvidenceFormatError(f"{count} digest algorithms", offset=cur.offset - 4, field="spec_id.algorithms")
    algs = tuple((cur.u16("spec_id.algorithm_id"), cur.u16("spec_id.digest_size")) for _ in range(count))
    vendor = cur.u8("spec_id.vendor_info_size")
    cur.take(vendor, "spec_id.vendor_info")
    return algs


def _is_padding(rest: bytes) -> bool:
    return not rest.strip(b"\xff") or not rest.strip(b"\0")


def parse_ccel(data: bytes) -> CcEventLog:
    """Parses a CC event log area. Raises :class:`EvidenceFormatError` naming the offset and field."""
    cur = Cursor(data)
    index = cur.u32("header.index")
    etype = cur.u32("header.type")
    digest = cur.take(20, "header.digest")
    size = cur.u32("header.size")
    data_off = cur.offset
    header_data = cur.take(size, "header.data")
    algs = _spec_algorithms(header_data, data_off)
    sizes = dict(algs)
    events: list[CcEvent] = []
    while cur.remaining:
        start = cur.offset
        probe = data[start:]
        if _is_padding(probe):
            break
        n = len(events)
        mr_index = cur.u32(f"event[{n}].index")
        event_type = cur.u32(f"event[{n}].type")
        count = cur.u32(f"event[{n}].digest_count")
        if count > len(sizes):
            raise EvidenceFormatError(f"{count} digests", offset=cur.offset - 4, field=f"event[{n}].digest_count")
        digests = []
        for _ in range(count):
            alg_off = cur.offset
            alg = cur.u16(f"event[{n}].algorithm_id")
            if alg not in sizes:
                raise EvidenceFormatError(
                    f"algorithm {alg:#x} not in the Spec ID event",
                    offset=alg_off,
                    field=f"event[{n}].algorithm_id",
                )
            digests.append((alg, cur.take(sizes[alg], f"event[{n}].digest")))
        esize = cur.u32(f"event[{n}].size")
        events.append(CcEvent(mr_index, event_type, tuple(digests), cur.take(esize, f"event[{n}].data")))
    return CcEventLog(index, etype, digest, header_data, algs, tuple(events), cur.rest())


def serialize_ccel(log: CcEventLog) -> bytes:
    """The exact bytes of ``log``; the inverse of :func:`parse_ccel`."""
    return log.to_bytes()


def replay_rtmrs(log: CcEventLog) -> tuple[bytes, bytes, bytes, bytes]:
    """RTMR0..3 as the log's SHA-384 digests would extend them from zero."""
    rtmrs = [bytes(48)] * 4
    for event in log.events:
        if event.event_type == EV_NO_ACTION or not 1 <= event.mr_index <= 4:
            continue
        d = event.digest(ALG_SHA384)
        if d is None:
            continue
        i = event.mr_index - 1
        rtmrs[i] = hashlib.sha384(rtmrs[i] + d).digest()
    return rtmrs[0], rtmrs[1], rtmrs[2], rtmrs[3]


def rtmr_mismatches(log: CcEventLog, rtmrs: Sequence[bytes]) -> list[int]:
    """The RTMR indices whose replayed value differs from ``rtmrs`` (compared in constant time)."""
    replayed = replay_rtmrs(log)
    return [i for i in range(4) if not hmac.compare_digest(replayed[i], rtmrs[i])]
