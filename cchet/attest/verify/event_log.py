"""Checking a TDX event log against the quote: replaying it must give the quote's RTMRs.

A log that replays to the quote's RTMRs is one the TD's firmware and kernel could have measured; it is only
as trustworthy as the quote (verified separately) and says nothing about events not logged.
"""

from __future__ import annotations

from cchet.attest.formats.ccel import CcEventLog, rtmr_mismatches
from cchet.attest.formats.dcap import Quote, TdReportBody
from cchet.attest.verify.failure import Failure

__all__ = ["check_event_log"]


def check_event_log(quote: Quote, log: CcEventLog | None) -> list[str]:
    """Failures of replaying ``log`` against ``quote`` (empty when there is no log or it matches)."""
    if log is None:
        return []
    if not isinstance(quote.body, TdReportBody):
        return [Failure("intel.event_log", "event_log: only TDX quotes carry RTMRs to replay a CC event log against")]
    return [
        Failure("intel.event_log", f"event_log: replay does not give the quote's RTMR{i}")
        for i in rtmr_mismatches(log, quote.body.rtmrs)
    ]
