"""Tampering properties of the real verifiers: any byte changed in the signed or signature part of a
(simulated) quote, SNP report or GPU report is either refused by the parser or fails verification; it never
verifies. (PEM certificate text is left out: whitespace inside it may change without changing a
certificate.)"""

from __future__ import annotations

import contextlib
import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest import formats
from cchet.attest.collateral import CollateralSource
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.simulate import SimulatedAuthority, simulated_collateral
from cchet.attest.simulate.dcap import simulate_tdx_quote
from cchet.attest.simulate.snp import simulate_snp_report
from cchet.attest.simulate.spdm import simulate_spdm_report
from cchet.attest.simulate.verifier import simulated_anchors
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import VerifyOptions, default_options
from cchet.errors import EvidenceFormatError
from tests.attest.conftest import NOW

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _options(authority: SimulatedAuthority, collateral: dict[str, str] | None = None) -> VerifyOptions:
    return default_options(
        now=NOW,
        anchors=simulated_anchors(authority),
        intel_collateral=lambda _q: collateral,
        collateral=CollateralSource(),
    )


def _flip(data: bytes, offset: int, xor: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= xor
    return bytes(out)


@SETTINGS
@given(where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_a_changed_quote_byte_never_verifies(authority: SimulatedAuthority, where: float, xor: int) -> None:
    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    options = _options(authority, simulated_collateral(authority, quote, now=NOW))
    raw = quote.to_bytes()
    assert verify_quote_device(quote, options)[1] == []
    end = raw.index(b"-----BEGIN CERTIFICATE-----")
    bad = _flip(raw, int(where * end), xor)
    try:
        parsed = formats.parse(bad)
    except EvidenceFormatError:
        return
    assert isinstance(parsed, Quote)
    with contextlib.suppress(EvidenceFormatError):  # a certificate that no longer decodes vouches for nothing
        assert verify_quote_device(parsed, options)[1] != []


@SETTINGS
@given(where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_a_changed_snp_byte_never_verifies(authority: SimulatedAuthority, where: float, xor: int) -> None:
    report, certs = simulate_snp_report(authority, report_data=bytes(64))
    options = _options(authority)
    assert verify_snp_device(report, certs, options)[1] == []
    raw = report.to_bytes()
    bad = _flip(raw, int(where * len(raw)), xor)
    try:
        parsed = formats.parse(bad, "snp")
    except EvidenceFormatError:
        return
    assert isinstance(parsed, SnpReport)
    assert verify_snp_device(parsed, certs, options)[1] != []


@SETTINGS
@given(where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_a_changed_gpu_report_byte_never_verifies(authority: SimulatedAuthority, where: float, xor: int) -> None:
    report, certs = simulate_spdm_report(authority, nonce=bytes(32))
    options = _options(authority)
    assert verify_gpu_device(report, certs, options)[1] == []
    raw = report.to_bytes()
    bad = _flip(raw, int(where * len(raw)), xor)
    try:
        parsed = formats.parse(bad, "spdm")
    except EvidenceFormatError:
        return
    assert isinstance(parsed, SpdmReport)
    assert verify_gpu_device(parsed, certs, options)[1] != []


def test_the_verification_time_matters(authority: SimulatedAuthority) -> None:
    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    collateral = simulated_collateral(authority, quote, now=NOW)
    later = default_options(
        now=NOW + dt.timedelta(days=45),
        anchors=simulated_anchors(authority),
        intel_collateral=lambda _q: collateral,
        collateral=CollateralSource(),
    )
    failures = verify_quote_device(quote, later)[1]
    assert {getattr(f, "check", "") for f in failures} >= {"intel.tcb_info_validity", "intel.crl"}


# pck_crl_issuer_chain is not read: the PCK CRL is checked against the PCK CA of the quote's own (verified)
# chain, and the root CRL against the root.
COLLATERAL_FIELDS = (
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)
JUNK = st.one_of(
    st.just(""),
    st.just("{}"),
    st.just("[]"),
    st.just("null"),
    st.text(max_size=40),
    st.just('{"tcbLevels": [{"tcb": {}}]}'),
    st.just("zz"),
)


@SETTINGS
@given(field=st.sampled_from(COLLATERAL_FIELDS), junk=JUNK)
def test_malformed_collateral_is_a_failure_never_a_crash(authority: SimulatedAuthority, field: str, junk: str) -> None:
    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    collateral = dict(simulated_collateral(authority, quote, now=NOW))
    collateral[field] = junk
    failures = verify_quote_device(quote, _options(authority, collateral))[1]
    assert failures and all(getattr(f, "check", None) for f in failures)


@SETTINGS
@given(
    level=st.dictionaries(
        st.sampled_from(["tcb", "tcbStatus", "advisoryIDs", "tcbDate"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=5),
            st.just({"sgxtcbcomponents": [{"svn": 1}] * 3, "pcesvn": "x"}),
        ),
    )
)
def test_malformed_tcb_levels_are_failures(authority: SimulatedAuthority, level: dict[str, object]) -> None:
    import json

    from cchet.attest.rawsig import raw_from_der

    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    collateral = dict(simulated_collateral(authority, quote, now=NOW))
    tcb_info = json.loads(collateral["tcb_info"])
    tcb_info["tcbLevels"] = [level]
    text = json.dumps(tcb_info)
    collateral["tcb_info"] = text
    collateral["tcb_info_signature"] = raw_from_der(authority.sign("intel_tcb_signing", text.encode()), 32).hex()
    failures = verify_quote_device(quote, _options(authority, collateral))[1]
    assert failures and all(getattr(f, "check", None) for f in failures)


@SETTINGS
@given(
    name=st.sampled_from(["tcb_info", "qe_identity"]),
    data=st.data(),
    value=st.one_of(
        st.none(),
        st.floats(allow_nan=False),
        st.text(max_size=5),
        st.lists(st.integers(-1, 300), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
)
def test_authentic_collateral_with_a_malformed_field_fails_tagged(
    authority: SimulatedAuthority, name: str, data: st.DataObject, value: object
) -> None:
    """Collateral the TCB signing key did sign, with any top-level field of the wrong type or size: parsed
    after authentication, it fails with a tagged check; nothing raises."""
    import json

    from cchet.attest.rawsig import raw_from_der

    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    collateral = dict(simulated_collateral(authority, quote, now=NOW))
    doc = json.loads(collateral[name])
    doc[data.draw(st.sampled_from(sorted(doc)))] = value
    text = json.dumps(doc)
    collateral[name] = text
    collateral[f"{name}_signature"] = raw_from_der(authority.sign("intel_tcb_signing", text.encode()), 32).hex()
    failures = verify_quote_device(quote, _options(authority, collateral))[1]
    assert failures and all(getattr(f, "check", None) for f in failures)
