"""Simulated SNP and GPU reports have the real size, offsets and signature encodings, field by field."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cchet.attest import formats
from cchet.attest.formats.certchain import parse_pem_chain
from cchet.attest.formats.snp import REPORT_SIZE, SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.rawsig import der_from_raw
from cchet.attest.simulate import SimulatedAuthority, simulate_snp_report, simulate_spdm_report
from tests.conftest import fixture_path


def test_snp_report_layout_matches_real(authority: SimulatedAuthority) -> None:
    real = formats.parse(fixture_path("go_sev_guest/attestation.bin").read_bytes())
    assert isinstance(real, SnpReport)
    rd = bytes(range(64))
    measurement = hashlib.sha384(b"m").digest()
    host = bytes([9]) * 32
    sim, chain = simulate_snp_report(authority, report_data=rd, measurement=measurement, host_data=host)
    raw = sim.to_bytes()
    assert len(raw) == REPORT_SIZE == len(real.to_bytes())
    assert raw[0x50:0x90] == rd and raw[0x90:0xC0] == measurement and raw[0xC0:0xE0] == host
    assert raw[0x1A0:0x1E0] == authority.amd_chip_id
    assert int.from_bytes(raw[0x180:0x188], "little") == sim.reported_tcb
    assert sim.signature_algo == real.signature_algo == 1
    assert raw[0x2A0 + 144 :] == bytes(REPORT_SIZE - 0x2A0 - 144)
    assert formats.parse(raw) == sim
    # r and s are little-endian in 72-byte fields, as in the real report
    vcek = parse_pem_chain(chain).certificates()[0]
    key = vcek.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    key.verify(
        der_from_raw(raw[0x2A0 : 0x2A0 + 144], byteorder="little"), raw[:0x2A0], ec.ECDSA(hashes.SHA384())
    )
    assert real.signature_r[48:] == bytes(24) and sim.signature_r[48:] == bytes(24)


def test_snp_debug_and_policy_bits(authority: SimulatedAuthority) -> None:
    sim, _ = simulate_snp_report(authority, report_data=bytes(64), debug=True)
    assert sim.debug and sim.policy & (1 << 17)
    sim, _ = simulate_snp_report(authority, report_data=bytes(64))
    assert not sim.debug


def test_spdm_report_layout_matches_real(authority: SimulatedAuthority) -> None:
    real = formats.parse(
        fixture_path("nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt").read_bytes()
    )
    assert isinstance(real, SpdmReport)
    nonce = bytes(range(32))
    sim, chain = simulate_spdm_report(
        authority, nonce=nonce, driver_version="560.35.03", vbios_version="96.00.74.00.20"
    )
    raw = sim.to_bytes()
    real_raw = real.to_bytes()
    assert (
        raw[:4] == real_raw[:4] == bytes.fromhex("11e001ff")
        and raw[4:36] == nonce
        and raw[36] == real_raw[36]
    )
    assert raw[37:41] == real_raw[37:41] == bytes.fromhex("11600000")
    assert raw[41] == real_raw[41] == 64
    assert int.from_bytes(raw[42:45], "little") == int.from_bytes(real_raw[42:45], "little") == 64 * 55
    assert [(b.index, b.specification, b.value_type, len(b.value)) for b in sim.response.blocks] == [
        (b.index, b.specification, b.value_type, len(b.value)) for b in real.response.blocks
    ]
    assert sim.driver_version == "560.35.03" and sim.vbios_version == "96.00.74.00.20"
    assert len(sim.response.signature) == len(real.response.signature) == 96
    assert formats.parse(raw) == sim
    leaf = parse_pem_chain(chain).certificates()[0]
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der_from_raw(raw[-96:]), raw[:-96], ec.ECDSA(hashes.SHA384()))


def test_snp_versions(authority: SimulatedAuthority) -> None:
    v2, _ = simulate_snp_report(authority, report_data=bytes(64), version=2)
    assert v2.version == 2 and v2.product is None and formats.parse(v2.to_bytes()) == v2
    v5, _ = simulate_snp_report(authority, report_data=bytes(64), version=5)
    assert v5.version == 5 and v5.product == "Genoa" and formats.parse(v5.to_bytes()) == v5
