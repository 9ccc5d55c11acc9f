"""Simulated TDX event logs: a CCEL whose replay gives the RTMRs a simulated quote then carries.

SIMULATED: the log says whatever the caller lists. The layout is the real one (a legacy-format Spec ID
header event declaring SHA-384, then crypto-agile events), so :func:`cchet.attest.formats.ccel.parse_ccel`
and the replay treat it exactly like firmware's.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from cchet.attest.formats.ccel import ALG_SHA384, SPEC_ID_SIGNATURE, CcEvent, CcEventLog, replay_rtmrs

__all__ = ["EV_EVENT_TAG", "simulate_event_log"]

EV_EVENT_TAG = 0x00000006


def simulate_event_log(
    events: Sequence[tuple[int, bytes]], *, event_type: int = EV_EVENT_TAG
) -> tuple[CcEventLog, tuple[bytes, bytes, bytes, bytes]]:
    """A log of ``(rtmr_index, data)`` events (each measured as SHA-384 of its data into RTMR
    ``rtmr_index``, 0..3) and the four RTMR values its replay gives. Raises ``ValueError`` for an index
    outside 0..3."""
    spec = SPEC_ID_SIGNATURE + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 1) + struct.pack("<HH", ALG_SHA384, 48) + b"\0"
    log_events = []
    for index, data in events:
        if not 0 <= index <= 3:
            raise ValueError("RTMR index must be 0..3")
        digest = hashlib.sha384(data).digest()
        log_events.append(CcEvent(index + 1, event_type, ((ALG_SHA384, digest),), bytes(data)))
    log = CcEventLog(1, 3, bytes(20), spec, ((ALG_SHA384, 48),), tuple(log_events))
    return log, replay_rtmrs(log)
