"""Verification: the simulated verifier accepts simulated evidence and lists every failure of tampered
evidence; the shared checks reproduce upstream verdicts on real fixtures; real roots never pass here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import pytest

from cchet.attest import formats
from cchet.attest.binding import Binding
from cchet.attest.evidence import CompositeEvidence, CpuEvidence, GpuEvidence
from cchet.attest.formats.certchain import parse_pem_chain
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.simulate import (
    SimulatedAuthority,
    SimulatedVerifier,
    simulate_composite,
    simulation_options,
)
from cchet.attest.verify import TrustAnchor, default_options
from cchet.attest.verify.dcap import check_quote
from cchet.attest.verify.gpu import check_gpu
from cchet.attest.verify.snp import check_snp
from cchet.errors import VerificationError
from tests.attest.conftest import NOW
from tests.conftest import fixture_path

BINDING = Binding(bytes(32), 0x0020, 0x0001, 0x0003, bytes(32), bytes(32))


@pytest.mark.parametrize("kind", ["tdx", "snp", "sgx"])
def test_simulated_evidence_verifies(authority: SimulatedAuthority, kind: str) -> None:
    ev = simulate_composite(authority, kind, nonce=os.urandom(32), binding=BINDING, gpus=2)
    verified = SimulatedVerifier().check(ev, simulation_options(authority, now=NOW)).verified()
    assert verified.simulated and verified.cpu.kind == kind and len(verified.gpus) == 2
    assert verified.cpu.tcb_status == (None if kind == "snp" else "UpToDate")


def test_every_failure_is_listed(authority: SimulatedAuthority) -> None:
    ev = simulate_composite(authority, "tdx", report_data=bytes(64), gpus=1)
    quote = ev.cpu.report
    assert isinstance(quote, Quote)
    bad_body = dataclasses.replace(quote.body, mr_td=bytes(48))
    gpu = ev.gpus[0]
    bad_gpu = dataclasses.replace(
        gpu,
        report=dataclasses.replace(
            gpu.report, request=dataclasses.replace(gpu.report.request, nonce=bytes(32))
        ),
    )
    tampered = CompositeEvidence(CpuEvidence(dataclasses.replace(quote, body=bad_body)), (bad_gpu,))
    with pytest.raises(VerificationError) as e:
        SimulatedVerifier().check(tampered, simulation_options(authority, now=NOW)).verified()
    text = " | ".join(e.value.failures)
    assert "quote signature does not verify" in text and "gpu0: SPDM signature does not verify" in text


def test_tcb_status_comes_from_collateral(authority: SimulatedAuthority) -> None:
    ev = simulate_composite(authority, "tdx", report_data=bytes(64))
    opts = simulation_options(authority, now=NOW, tcb_status="OutOfDate", advisory_ids=["INTEL-SA-00001"])
    verified = SimulatedVerifier().check(ev, opts).verified()
    assert verified.cpu.tcb_status == "OutOfDate" and verified.cpu.advisory_ids == ("INTEL-SA-00001",)


def test_expired_collateral_fails(authority: SimulatedAuthority) -> None:
    ev = simulate_composite(authority, "tdx", report_data=bytes(64))
    quote = ev.cpu.report
    assert isinstance(quote, Quote)
    from cchet.attest.simulate import simulated_collateral

    stale = simulated_collateral(authority, quote, now=NOW - dt.timedelta(days=90))
    with pytest.raises(VerificationError, match="tcb_info: not valid"):
        SimulatedVerifier().check(ev, simulation_options(authority, now=NOW, collateral=stale)).verified()


def test_simulated_verifier_refuses_real_anchors(fixtures: object) -> None:
    quote = formats.parse(fixture_path("dcap_qvl/tdx_quote").read_bytes())
    assert isinstance(quote, Quote)
    root = TrustAnchor("intel", fixture_path("dcap_qvl/TrustedRootCA.der").read_bytes())
    collateral = json.loads(fixture_path("dcap_qvl/tdx_quote_collateral.json").read_text())
    opts = default_options(
        now=dt.datetime(2025, 7, 19, 10, 0, 34, tzinfo=dt.UTC),
        anchors=(root,),
        intel_collateral=lambda q: collateral,
    )
    with pytest.raises(VerificationError, match="no simulated intel root"):
        SimulatedVerifier().check(CompositeEvidence(CpuEvidence(quote)), opts).verified()


def test_simulated_anchor_must_say_simulated() -> None:
    real_root = fixture_path("dcap_qvl/TrustedRootCA.der").read_bytes()
    with pytest.raises(ValueError, match="SIMULATED"):
        TrustAnchor("intel", real_root, simulated=True)


def test_simulated_root_cannot_be_a_real_anchor(authority: SimulatedAuthority) -> None:
    with pytest.raises(ValueError, match="SIMULATED"):
        TrustAnchor("intel", authority.der("intel_root"))


@pytest.mark.parametrize(
    ("quote", "collateral", "when", "status", "advisories"),
    [
        ("tdx_quote", "tdx_quote_collateral.json", "2025-07-19T10:00:34", "UpToDate", ()),
        (
            "sgx_quote",
            "sgx_quote_collateral.json",
            "2025-07-19T10:01:17",
            "ConfigurationAndSWHardeningNeeded",
            ("INTEL-SA-00289", "INTEL-SA-00615"),
        ),
    ],
)
def test_quote_checks_reproduce_upstream_verdicts(
    quote: str, collateral: str, when: str, status: str, advisories: tuple[str, ...]
) -> None:
    parsed = formats.parse(fixture_path(f"dcap_qvl/{quote}").read_bytes())
    assert isinstance(parsed, Quote)
    root = TrustAnchor("intel", fixture_path("dcap_qvl/TrustedRootCA.der").read_bytes())
    now = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    check = check_quote(parsed, (root,), now, json.loads(fixture_path(f"dcap_qvl/{collateral}").read_text()))
    assert check.failures == ()
    assert (check.tcb_status, check.advisory_ids) == (status, advisories)


def test_outdated_quote_matches_no_tcb_level() -> None:
    parsed = formats.parse(fixture_path("dcap_qvl/tdx_quote_outdated").read_bytes())
    assert isinstance(parsed, Quote)
    root = TrustAnchor("intel", fixture_path("dcap_qvl/TrustedRootCA.der").read_bytes())
    collateral = json.loads(fixture_path("dcap_qvl/tdx_quote_outdated_collateral.json").read_text())
    check = check_quote(parsed, (root,), dt.datetime(2026, 3, 20, 10, 41, 14, tzinfo=dt.UTC), collateral)
    assert check.tcb_status is None
    assert any("no TCB level matches" in f for f in check.failures)


def test_quote_checks_catch_go_tdx_guest_tampering() -> None:
    raw = fixture_path("go_tdx_guest/tdx_prod_quote_SPR_E4.dat").read_bytes()
    root = TrustAnchor("intel", fixture_path("dcap_qvl/TrustedRootCA.der").read_bytes())
    now = dt.datetime(2023, 7, 1, 1, tzinfo=dt.UTC)
    clean = formats.parse(raw)
    assert isinstance(clean, Quote)
    assert [f for f in check_quote(clean, (root,), now, None).failures if "collateral" not in f] == []
    for offset, needle in [(0x3C, "quote signature"), (0xB77, "pck_chain"), (0xF5F, "pck_chain")]:
        bad = bytearray(raw)
        bad[offset] = 0x32
        parsed = formats.parse(bytes(bad))
        assert isinstance(parsed, Quote)
        assert any(needle in f for f in check_quote(parsed, (root,), now, None).failures), offset


def test_snp_check_on_real_milan_report() -> None:
    report = formats.parse(fixture_path("go_sev_guest/attestation.bin").read_bytes())
    assert isinstance(report, SnpReport)
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    vcek = x509.load_der_x509_certificate(fixture_path("go_sev_guest/vcek.testcer").read_bytes())
    bundle = fixture_path("go_sev_guest/milan.testcer").read_bytes()
    ark = TrustAnchor("amd", parse_pem_chain(bundle).ders[1])
    certs = vcek.public_bytes(Encoding.PEM) + bundle
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert check_snp(report, certs, (ark,), now).failures == ()
    flipped = bytearray(report.to_bytes())
    flipped[21] ^= 0x80
    bad = formats.parse(bytes(flipped))
    assert isinstance(bad, SnpReport)
    assert any("signature" in f for f in check_snp(bad, certs, (ark,), now).failures)


@pytest.mark.parametrize(
    ("report", "chain", "ok"),
    [
        ("unit_testdata/hopperAttestationReport.txt", "unit_testdata/hopperCertChain.txt", True),
        (
            "unit_testdata/sample_attestation_data/gpu/blackwellAttestationReport.txt",
            "unit_testdata/sample_attestation_data/gpu/blackwellCertChain.txt",
            True,
        ),
        (
            "unit_testdata/sample_attestation_data/gpu/hopperAttestationReportInvalidSignature.txt",
            "unit_testdata/sample_attestation_data/gpu/hopperCertChainExpired.txt",
            False,
        ),
    ],
)
def test_gpu_check_on_real_reports(report: str, chain: str, ok: bool) -> None:
    parsed = formats.parse(fixture_path(f"nvidia_attestation_sdk/{report}").read_bytes())
    assert isinstance(parsed, SpdmReport)
    root_pem = fixture_path("nvtrust/certs/local_gpu_verifier_verifier_device_root.pem").read_bytes()
    root = TrustAnchor("nvidia", parse_pem_chain(root_pem).ders[0])
    certs = fixture_path(f"nvidia_attestation_sdk/{chain}").read_bytes()
    check = check_gpu(parsed, certs, (root,), dt.datetime(2025, 6, 1, tzinfo=dt.UTC), what="gpu0")
    assert (check.failures == ()) is ok
    if not ok:
        assert any("SPDM signature does not verify" in f for f in check.failures)


def test_gpu_evidence_index_order_is_enforced(authority: SimulatedAuthority) -> None:
    ev = simulate_composite(authority, "tdx", report_data=bytes(64), gpus=2)
    with pytest.raises(ValueError, match="ascending"):
        CompositeEvidence(ev.cpu, (ev.gpus[1], ev.gpus[0]))
    with pytest.raises(ValueError, match="ascending"):
        CompositeEvidence(ev.cpu, (ev.gpus[0], GpuEvidence(0, ev.gpus[1].report, ev.gpus[1].certificates)))


def test_simulated_event_log_replays_and_tampering_is_caught(authority: SimulatedAuthority) -> None:
    events = [(0, b"firmware"), (1, b"kernel"), (1, b"initrd"), (2, b"cmdline"), (3, b"app")]
    ev = simulate_composite(authority, "tdx", report_data=bytes(64), cpu={"events": events})
    assert ev.cpu.event_log is not None and len(ev.cpu.event_log.events) == 5
    opts = simulation_options(authority, now=NOW)
    SimulatedVerifier().check(ev, opts).verified()
    assert formats.parse(ev.to_bytes()) == ev
    log = ev.cpu.event_log
    forged_event = dataclasses.replace(log.events[1], digests=((0x000C, bytes(48)),))
    forged = dataclasses.replace(log, events=(log.events[0], forged_event, *log.events[2:]))
    bad = dataclasses.replace(ev, cpu=dataclasses.replace(ev.cpu, event_log=forged))
    with pytest.raises(VerificationError, match="RTMR1"):
        SimulatedVerifier().check(bad, opts).verified()


def test_real_ccel_matches_its_quote() -> None:
    from cchet.attest.formats.ccel import parse_ccel
    from cchet.attest.verify.event_log import check_event_log

    quote = formats.parse(fixture_path("go_tdx_guest/ccel/cos-113-tdx-quote.dat").read_bytes())
    assert isinstance(quote, Quote)
    log = parse_ccel(fixture_path("go_tdx_guest/ccel/ccel_data.dat").read_bytes())
    assert check_event_log(quote, log) == []
    other = formats.parse(fixture_path("dcap_qvl/tdx_quote").read_bytes())
    assert isinstance(other, Quote)
    assert len(check_event_log(other, log)) >= 3


def test_a_leaf_cannot_issue_certificates(authority: SimulatedAuthority) -> None:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from cchet.attest.verify.chain import verify_chain

    leaf = authority.certs["nvidia_leaf"]
    key = ec.generate_private_key(ec.SECP384R1())
    rogue = (
        cx509.CertificateBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(cx509.NameOID.COMMON_NAME, "rogue")]))
        .issuer_name(leaf.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(authority.keys["nvidia_leaf"], hashes.SHA384())
    )
    anchor = TrustAnchor("nvidia", authority.der("nvidia_root"), simulated=True)
    reached, failures = verify_chain(
        [rogue, leaf, authority.certs["nvidia_root"]], [anchor], NOW, what="gpu", check="nvidia.chain"
    )
    assert reached == anchor
    assert failures == ["gpu: certificate 1 issues certificate 0 but is not a CA"]
