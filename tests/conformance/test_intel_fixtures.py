"""Real Intel quotes and collateral get the verdicts upstream asserts (MANIFEST.md section 2), at the times
it records, under the pinned Intel SGX Root CA."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cchet.attest import formats
from cchet.attest.collateral import CollateralSource
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.intel_collateral import parse_tcb_info
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.options import VerifyOptions, default_options
from cchet.attest.verify.roots import INTEL_SGX_ROOT
from cchet.attest.verify.tcb_status import matches_platform_level
from cchet.errors import (
    CertificateChainError,
    CollateralError,
    EvidenceFormatError,
    SignatureError,
    TcbError,
    VerificationError,
)
from tests.conformance.intel_material import at, fixture_json, go_collateral
from tests.conftest import fixture_path


def quote_of(relative: str) -> Quote:
    q = formats.parse(fixture_path(relative).read_bytes())
    assert isinstance(q, Quote)
    return q


def options(now: dt.datetime, collateral: dict[str, str] | None) -> VerifyOptions:
    """Default options (pinned roots) with fixed collateral and no cache."""
    return default_options(now=now, intel_collateral=lambda _q: collateral, collateral=CollateralSource())


def checks(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


DCAP_QVL = [
    ("dcap_qvl/tdx_quote", "dcap_qvl/tdx_quote_collateral.json", at(2025, 7, 19, 10, 0, 34), "tdx", "UpToDate", ()),
    (
        "dcap_qvl/sgx_quote",
        "dcap_qvl/sgx_quote_collateral.json",
        at(2025, 7, 19, 10, 1, 17),
        "sgx",
        "ConfigurationAndSWHardeningNeeded",
        ("INTEL-SA-00289", "INTEL-SA-00615"),
    ),
    (
        "dcap_qvl/near_quote_hex.txt",
        "dcap_qvl/near_quote_collateral.json",
        at(2025, 10, 2, 7, 3, 50),
        "tdx",
        "UpToDate",
        (),
    ),
]


@pytest.mark.parametrize(("quote", "collateral", "now", "kind", "status", "advisories"), DCAP_QVL)
def test_dcap_qvl_verdicts(
    quote: str, collateral: str, now: dt.datetime, kind: str, status: str, advisories: tuple[str, ...]
) -> None:
    device, failures = verify_quote_device(quote_of(quote), options(now, fixture_json(collateral)))
    assert failures == []
    assert (device.kind, device.tcb_status, device.advisory_ids) == (kind, status, advisories)
    assert device.anchor == INTEL_SGX_ROOT.sha256 and not device.simulated


def test_outdated_v5_quote_matches_no_tcb_level() -> None:
    q = quote_of("dcap_qvl/tdx_quote_outdated")
    assert q.header.version == 5 and q.body.is_td15  # type: ignore[union-attr]
    _, failures = verify_quote_device(
        q, options(at(2026, 3, 20, 10, 41, 14), fixture_json("dcap_qvl/tdx_quote_outdated_collateral.json"))
    )
    assert checks(failures) == {"intel.tcb_level"}
    with pytest.raises(TcbError):
        raise_failures(failures)


@pytest.mark.parametrize(
    ("quote", "collateral", "now"),
    [(q, c, n + dt.timedelta(seconds=2)) for q, c, n, *_ in DCAP_QVL]
    + [(q, c, at(2053, 7, 1)) for q, c, *_ in DCAP_QVL],
)
def test_expired_collateral_and_far_future_fail(quote: str, collateral: str, now: dt.datetime) -> None:
    _, failures = verify_quote_device(quote_of(quote), options(now, fixture_json(collateral)))
    assert failures, now
    assert checks(failures) & {"intel.tcb_info_validity", "intel.qe_identity_validity", "intel.crl", "intel.pck_chain"}


def test_go_tdx_guest_v4_chain_and_signatures_without_collateral() -> None:
    _, failures = verify_quote_device(
        quote_of("go_tdx_guest/tdx_prod_quote_SPR_E4.dat"), options(at(2023, 7, 1, 1), None)
    )
    assert checks(failures) == {"intel.collateral_missing"}
    with pytest.raises(CollateralError):
        raise_failures(failures)


def test_go_tdx_guest_v5_chain_and_signatures_without_collateral() -> None:
    q = quote_of("go_tdx_guest/quote_v5_sample.dat")
    assert q.header.version == 5
    _, failures = verify_quote_device(q, options(at(2026, 2, 3, 1), None))
    assert checks(failures) == {"intel.collateral_missing"}


def test_go_tdx_guest_v4_with_its_collateral_matches_no_level_unmodified() -> None:
    """Upstream first zeroes level 0's SVNs because the sample response matches no level as it is."""
    q = quote_of("go_tdx_guest/tdx_prod_quote_SPR_E4.dat")
    collateral = go_collateral("sample_tcbInfo_response")
    _, failures = verify_quote_device(q, options(at(2023, 7, 1, 1), collateral))
    assert checks(failures) == {"intel.tcb_level"}
    tcb_info = json.loads(collateral["tcb_info"])
    level = tcb_info["tcbLevels"][0]
    for part in ("sgxtcbcomponents", "tdxtcbcomponents"):
        for c in level["tcb"][part]:
            c["svn"] = 0
    level["tcb"]["pcesvn"] = 0
    from cchet.attest.formats.certchain import load_certificate
    from cchet.attest.formats.pck import parse_pck_extensions

    pck = parse_pck_extensions(load_certificate(q.signature.qe.certification.pem_certificates()[0]))
    zeroed = parse_tcb_info(json.dumps(tcb_info)).tcb_levels[0]
    assert matches_platform_level(zeroed, pck.tcb_components, pck.pce_svn, q.body.tee_tcb_svn)  # type: ignore[union-attr]


def test_go_tdx_guest_v5_tcb_info_is_up_to_date() -> None:
    """TestVerifyUsingTcbInfoV5: UpToDate with module TDX_01 UpToDate. Only the 2023 QE identity and CRLs,
    and the TCB signing certificate (valid to 2025-05-21), fail at 2026: no v5-era copies exist."""
    q = quote_of("go_tdx_guest/quote_v5_sample.dat")
    device, failures = verify_quote_device(q, options(at(2026, 2, 3, 1), go_collateral("sample_tcbinfo_response_v5")))
    assert device.tcb_status == "UpToDate"
    assert checks(failures) == {
        "intel.tcb_info_chain",
        "intel.qe_identity_chain",
        "intel.qe_identity_validity",
        "intel.crl",
    }


def test_go_tdx_guest_collateral_expired_in_2053() -> None:
    q = quote_of("go_tdx_guest/tdx_prod_quote_SPR_E4.dat")
    _, failures = verify_quote_device(q, options(at(2053, 7, 1, 1), go_collateral("sample_tcbInfo_response")))
    text = " ".join(failures)
    assert "collateral.tcb_info: not valid at 2053-07-01T01:00:00+00:00, expired" in text
    assert "pck_chain: certificate 0" in text and "has expired" in text
    with pytest.raises(CertificateChainError):
        raise_failures(failures)


# go-tdx-guest TestNegativeVerification: one byte set, the failure each must give.
CORRUPTIONS = [
    (0x00, 3, "parse", None),
    (0x278, 0x10, "parse", None),
    (0x1343, 0x32, "intel.pck_chain", CertificateChainError),
    (0x1329, 0x32, "intel.pck_chain", CertificateChainError),
    (0xF5F, 0x32, "intel.pck_chain", CertificateChainError),
    (0xB77, 0x32, "intel.pck_chain", CertificateChainError),
    (0x1E, 0x32, "intel.quote_signature", SignatureError),
    (0x3C, 0x32, "intel.quote_signature", SignatureError),
]


@pytest.mark.parametrize(("offset", "value", "check", "error"), CORRUPTIONS)
def test_go_tdx_guest_corruption_table(
    offset: int, value: int, check: str, error: type[VerificationError] | None
) -> None:
    raw = bytearray(fixture_path("go_tdx_guest/tdx_prod_quote_SPR_E4.dat").read_bytes())
    raw[offset] = value
    try:
        q = formats.parse(bytes(raw))
    except EvidenceFormatError:
        assert check == "parse"
        return
    assert check != "parse"
    assert isinstance(q, Quote)
    try:
        _, failures = verify_quote_device(q, options(at(2023, 7, 1, 1), None))
    except EvidenceFormatError:
        assert check == "intel.pck_chain"  # the certificate no longer decodes: the chain cannot be built
        return
    assert check in checks(failures)
    assert checks(failures) <= {check, "intel.collateral_missing", "intel.qe_report_signature"}
    assert error is not None
    with pytest.raises(error):
        raise_failures(failures)


def test_report_data_nonce() -> None:
    q = quote_of("dcap_qvl/tdx_quote")
    col = fixture_json("dcap_qvl/tdx_quote_collateral.json")
    opts = options(at(2025, 7, 19, 10, 0, 34), col)
    assert verify_quote_device(q, opts, expected_report_data=q.report_data)[1] == []
    _, failures = verify_quote_device(q, opts, expected_report_data=bytes(64))
    assert checks(failures) == {"intel.nonce"}


def test_the_pinned_root_is_the_fixture_root() -> None:
    import hashlib

    assert hashlib.sha256(fixture_path("dcap_qvl/TrustedRootCA.der").read_bytes()).hexdigest() == INTEL_SGX_ROOT.sha256


def test_appraise_accepts_a_real_quote_under_default_options() -> None:
    """The key broker's path: cchet.appraise with default options (pinned roots, the real verifier)."""
    from cchet.attest import appraise
    from cchet.attest.evidence import CompositeEvidence, CpuEvidence
    from cchet.attest.policy import Policy

    q = quote_of("dcap_qvl/tdx_quote")
    mrtd = q.body.mr_td.hex()  # type: ignore[union-attr]
    evidence = CompositeEvidence(CpuEvidence(q))
    opts = options(at(2025, 7, 19, 10, 0, 34), fixture_json("dcap_qvl/tdx_quote_collateral.json"))
    policy = Policy(tee_kinds=("tdx",), mrtd=(mrtd,), require_binding=False)
    result = appraise(evidence, policy, nonce=None, binding=None, options=opts)
    assert result.accepted and not result.simulated and result.verifier == "cchet-vendor-verifier", result.reasons
    assert result.device("cpu").claims["tcb_status"] == "UpToDate"
    sgx = CompositeEvidence(CpuEvidence(quote_of("dcap_qvl/sgx_quote")))
    result = appraise(
        sgx,
        Policy(tee_kinds=("sgx",), measurements="any", require_binding=False),
        nonce=None,
        binding=None,
        options=options(at(2025, 7, 19, 10, 1, 17), fixture_json("dcap_qvl/sgx_quote_collateral.json")),
    )
    assert not result.accepted and {v.rule for v in result.violations} == {"min_tcb_status", "accepted_advisories"}
