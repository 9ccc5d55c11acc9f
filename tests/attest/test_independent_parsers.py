"""Our parsers against independent ones: dcap-qvl's quote parser, and the SEV-SNP offsets of AMD's ABI
table written out here separately, on real fixtures and on simulated evidence alike."""

from __future__ import annotations

import struct

import pytest
from cryptography import x509

from cchet.attest.formats import parse
from cchet.attest.formats.dcap import Quote, SgxReportBody, TdReportBody
from cchet.attest.formats.pck import parse_pck_extensions
from cchet.attest.formats.snp import SnpReport
from cchet.attest.simulate import (
    SimulatedAuthority,
    simulate_sgx_quote,
    simulate_snp_report,
    simulate_tdx_quote,
)
from tests.conftest import fixture_path

dcap_qvl = pytest.importorskip("dcap_qvl", reason="dcap-qvl is a dev dependency")

QUOTES = [
    "dcap_qvl/tdx_quote",
    "dcap_qvl/sgx_quote",
    "dcap_qvl/tdx_quote_outdated",
    "go_tdx_guest/quote_v5_sample.dat",
    "go_tdx_guest/tdx_prod_quote_SPR_E4.dat",
]


def _compare(raw: bytes) -> None:
    ours = parse(raw)
    theirs = dcap_qvl.parse_quote(raw)
    assert isinstance(ours, Quote)
    h = theirs.header
    assert (h.version, h.attestation_key_type, h.tee_type, h.qe_svn, h.pce_svn) == (
        ours.header.version,
        ours.header.attestation_key_type,
        ours.header.tee_type,
        ours.header.qe_svn,
        ours.header.pce_svn,
    )
    assert (h.qe_vendor_id, h.user_data) == (ours.header.qe_vendor_id, ours.header.user_data)
    r = theirs.report
    if isinstance(ours.body, TdReportBody):
        b = ours.body
        assert (r.tee_tcb_svn, r.mr_seam, r.mr_signer_seam, r.seam_attributes) == (
            b.tee_tcb_svn,
            b.mr_seam,
            b.mr_signer_seam,
            b.seam_attributes,
        )
        assert (r.td_attributes, r.xfam, r.mr_td, r.mr_config_id, r.mr_owner, r.mr_owner_config) == (
            b.td_attributes,
            b.xfam,
            b.mr_td,
            b.mr_config_id,
            b.mr_owner,
            b.mr_owner_config,
        )
        assert (r.rt_mr0, r.rt_mr1, r.rt_mr2, r.rt_mr3, r.report_data) == (*b.rtmrs, b.report_data)
        if b.is_td15:
            assert (r.tee_tcb_svn2, r.mr_service_td) == (b.tee_tcb_svn2, b.mr_service_td)
    else:
        assert isinstance(ours.body, SgxReportBody)
        b2 = ours.body
        assert (r.cpu_svn, r.attributes, r.mr_enclave, r.mr_signer, r.report_data) == (
            b2.cpu_svn,
            b2.attributes,
            b2.mr_enclave,
            b2.mr_signer,
            b2.report_data,
        )
    pems = ours.signature.qe.certification.pem_certificates()
    assert theirs.cert_chain_pem_bytes() is not None
    ext = theirs.pck_extension()
    mine = parse_pck_extensions(x509.load_pem_x509_certificate(pems[0]))
    assert (ext.fmspc, ext.pce_id, ext.pce_svn, ext.cpu_svn, ext.ppid, ext.sgx_type) == (
        mine.fmspc,
        mine.pce_id,
        mine.pce_svn,
        mine.cpu_svn,
        mine.ppid,
        mine.sgx_type,
    )


@pytest.mark.parametrize("name", QUOTES)
def test_real_quotes_agree_with_dcap_qvl(name: str) -> None:
    _compare(fixture_path(name).read_bytes())


def test_simulated_quotes_agree_with_dcap_qvl(authority: SimulatedAuthority) -> None:
    _compare(simulate_tdx_quote(authority, report_data=bytes(range(64)), mr_td=bytes([3]) * 48).to_bytes())
    _compare(simulate_sgx_quote(authority, report_data=bytes(range(64)), isv_svn=3).to_bytes())


# AMD SEV-SNP ABI, ATTESTATION_REPORT: (offset, struct format) per field, written independently of the parser.
SNP_ABI = {
    "version": (0x00, "<I"),
    "guest_svn": (0x04, "<I"),
    "policy": (0x08, "<Q"),
    "family_id": (0x10, "16s"),
    "image_id": (0x20, "16s"),
    "vmpl": (0x30, "<I"),
    "signature_algo": (0x34, "<I"),
    "current_tcb": (0x38, "<Q"),
    "platform_info": (0x40, "<Q"),
    "flags": (0x48, "<I"),
    "report_data": (0x50, "64s"),
    "measurement": (0x90, "48s"),
    "host_data": (0xC0, "32s"),
    "id_key_digest": (0xE0, "48s"),
    "author_key_digest": (0x110, "48s"),
    "report_id": (0x140, "32s"),
    "report_id_ma": (0x160, "32s"),
    "reported_tcb": (0x180, "<Q"),
    "chip_id": (0x1A0, "64s"),
    "committed_tcb": (0x1E0, "<Q"),
    "current_build": (0x1E8, "B"),
    "current_minor": (0x1E9, "B"),
    "current_major": (0x1EA, "B"),
    "committed_build": (0x1EC, "B"),
    "committed_minor": (0x1ED, "B"),
    "committed_major": (0x1EE, "B"),
    "launch_tcb": (0x1F0, "<Q"),
    "signature_r": (0x2A0, "72s"),
    "signature_s": (0x2E8, "72s"),
}


def _check_snp(raw: bytes) -> SnpReport:
    report = parse(raw, kind="snp")
    assert isinstance(report, SnpReport)
    for name, (offset, fmt) in SNP_ABI.items():
        assert getattr(report, name) == struct.unpack_from(fmt, raw, offset)[0], name
    if report.version >= 3:
        assert (report.cpuid_fam_id, report.cpuid_mod_id, report.cpuid_step) == tuple(raw[0x188:0x18B])
    return report


@pytest.mark.parametrize("name", ["go_sev_guest/attestation.bin", "virtee_sev/report_milan.hex"])
def test_real_snp_reports_match_the_abi_table(name: str) -> None:
    data = fixture_path(name).read_bytes()
    _check_snp(data if name.endswith(".bin") else bytes.fromhex(data.decode().strip()))


@pytest.mark.parametrize("version", [2, 3, 5])
def test_simulated_snp_reports_match_the_abi_table(authority: SimulatedAuthority, version: int) -> None:
    report, _ = simulate_snp_report(
        authority, report_data=bytes(range(64)), vmpl=1, guest_svn=7, version=version
    )
    parsed = _check_snp(report.to_bytes())
    assert parsed.vmpl == 1 and parsed.guest_svn == 7 and parsed.report_data == bytes(range(64))
