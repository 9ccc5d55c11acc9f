"""Verifying one Intel DCAP quote as a device: collateral lookup, :func:`~cchet.attest.verify.dcap.check_quote`,
the event-log replay and, when asked, the report data."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from cchet.attest.formats.ccel import CcEventLog
from cchet.attest.formats.dcap import Quote
from cchet.attest.verify.dcap import check_quote
from cchet.attest.verify.event_log import check_event_log
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import VerifyOptions
from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["intel_collateral_for", "verify_quote_device"]


def intel_collateral_for(quote: Quote, options: VerifyOptions) -> Mapping[str, str] | None:
    """``options.intel_collateral`` when set, else ``options.collateral`` (cache, then fetcher)."""
    if options.intel_collateral is not None:
        return options.intel_collateral(quote)
    if options.collateral is not None:
        return options.collateral.intel(quote, options.now())
    return None


def verify_quote_device(
    quote: Quote,
    options: VerifyOptions,
    *,
    event_log: CcEventLog | None = None,
    expected_report_data: bytes | None = None,
) -> tuple[VerifiedDevice, list[str]]:
    """The verified CPU device and every failure (empty when it verified). ``expected_report_data`` must be
    exactly 64 bytes to match. Raises :class:`~cchet.errors.EvidenceFormatError` when a certificate inside
    the quote does not decode."""
    from cchet.attest.collateral.fetcher import FetchError

    now = options.now()
    fetch_failures: list[str] = []
    try:
        collateral = intel_collateral_for(quote, options)
    except FetchError as e:
        collateral = None
        fetch_failures.append(Failure("intel.collateral_missing", f"fetching the Intel collateral failed: {e}"))
    check = check_quote(quote, options.anchors_for("intel"), now, collateral)
    failures = [*check.failures, *fetch_failures]
    failures.extend(check_event_log(quote, event_log))
    if expected_report_data is not None and not hmac.compare_digest(expected_report_data, quote.report_data):
        failures.append(
            Failure(
                "intel.nonce",
                f"report_data is {quote.report_data.hex()}, expected {expected_report_data.hex()} "
                f"({len(expected_report_data)} bytes)",
            )
        )
    anchor = check.anchor
    device = VerifiedDevice(
        "cpu",
        quote.kind,
        bool(anchor and anchor.simulated),
        anchor.fingerprint if anchor else "",
        check.tcb_status,
        check.advisory_ids,
    )
    return device, failures
