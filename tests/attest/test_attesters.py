"""Attesters against fakes of the kernel, Gramine and NVML interfaces that serve real fixture bytes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import struct
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cchet.attest import Policy, appraise
from cchet.attest.attesters import (
    CompositeAttester,
    GramineAttester,
    NvmlGpuAttester,
    TsmAttester,
    snp_cert_table_to_pem,
)
from cchet.attest.binding import Binding
from cchet.attest.evidence import CpuEvidence
from cchet.attest.formats.certchain import parse_pem_chain
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.simulate import (
    SimulatedAuthority,
    simulate_spdm_report,
    simulate_tdx_quote,
    simulation_options,
)
from cchet.attest.verify import TrustAnchor
from cchet.attest.verify.snp import check_snp
from cchet.errors import AttestationError, DeviceUnavailable
from cchet.platform.fake_nvml import FakeGpu, FakeNvml
from tests.attest.conftest import NOW
from tests.conftest import fixture_path

VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes_le
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782").bytes_le
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae").bytes_le


class FakeTsm(TsmAttester):
    """configfs-tsm emulated on a temporary folder: a write to ``inblob`` makes the 'kernel' produce the
    served outblob/auxblob and bump ``generation``, as the real one does."""

    def __init__(self, root: Path, provider: str, outblob: bytes, auxblob: bytes = b"", **kw: Any) -> None:
        super().__init__(root, **kw)
        self.provider, self.outblob, self.auxblob = provider, outblob, auxblob
        self.inblobs: list[bytes] = []
        self.race = False

    def make_entry(self) -> Path:
        entry = super().make_entry()
        (entry / "provider").write_text(self.provider + "\n")
        (entry / "generation").write_text("0\n")
        return entry

    def write(self, entry: Path, name: str, data: bytes) -> None:
        super().write(entry, name, data)
        generation = int((entry / "generation").read_text()) + (2 if self.race else 1)
        (entry / "generation").write_text(f"{generation}\n")
        if name == "inblob":
            self.inblobs.append(data)
            (entry / "outblob").write_bytes(self.outblob)
            if self.auxblob:
                (entry / "auxblob").write_bytes(self.auxblob)

    def remove_entry(self, entry: Path) -> None:
        shutil.rmtree(entry)


def _cert_table(certs: Sequence[tuple[bytes, bytes]]) -> bytes:
    header_size = 24 * (len(certs) + 1)
    header, body = b"", b""
    for guid, der in certs:
        header += guid + struct.pack("<II", header_size + len(body), len(der))
        body += der
    return header + bytes(24) + body


def test_tsm_tdx_serves_a_real_quote(tmp_path: Path) -> None:
    raw = fixture_path("dcap_qvl/tdx_quote").read_bytes()
    ccel = fixture_path("go_tdx_guest/ccel/ccel_data.dat")
    quote_rd = raw[48 + 520 : 48 + 584]
    tsm = FakeTsm(tmp_path, "tdx_guest", raw, ccel=ccel)
    ev = tsm.collect(quote_rd)
    assert isinstance(ev.report, Quote) and ev.report.to_bytes() == raw and ev.kind == "tdx"
    assert ev.event_log is not None and tsm.inblobs == [quote_rd]
    assert list(tmp_path.iterdir()) == []  # the report directory was removed


def test_tsm_refuses_a_quote_for_other_report_data(tmp_path: Path) -> None:
    tsm = FakeTsm(tmp_path, "tdx_guest", fixture_path("dcap_qvl/tdx_quote").read_bytes(), ccel=None)
    with pytest.raises(AttestationError, match="other report data"):
        tsm.collect(bytes(64))


def test_tsm_detects_a_racing_writer(tmp_path: Path) -> None:
    raw = fixture_path("dcap_qvl/tdx_quote").read_bytes()
    tsm = FakeTsm(tmp_path, "tdx_guest", raw, ccel=None)
    tsm.race = True
    with pytest.raises(AttestationError, match="generation"):
        tsm.collect(raw[48 + 520 : 48 + 584])


def test_tsm_snp_with_certificate_table(tmp_path: Path) -> None:
    raw = fixture_path("go_sev_guest/attestation.bin").read_bytes()
    vcek = fixture_path("go_sev_guest/vcek.testcer").read_bytes()
    ask, ark = parse_pem_chain(fixture_path("go_sev_guest/milan.testcer").read_bytes()).ders
    table = _cert_table([(ARK_GUID, ark), (VCEK_GUID, vcek), (ASK_GUID, ask)])
    tsm = FakeTsm(tmp_path, "sev_guest", raw, table, privlevel=0)
    ev = tsm.collect(bytes.fromhex("0102030405") + bytes(59))
    assert isinstance(ev.report, SnpReport) and ev.kind == "snp"
    chain = parse_pem_chain(ev.certificates).certificates()
    assert [c.public_bytes(Encoding.DER) for c in chain] == [vcek, ask, ark]
    check = check_snp(
        ev.report, ev.certificates, (TrustAnchor("amd", ark),), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    assert check.failures == ()


def test_snp_cert_table_rejects_overruns() -> None:
    table = VCEK_GUID + struct.pack("<II", 48, 4096) + bytes(24)
    with pytest.raises(Exception, match="overruns"):
        snp_cert_table_to_pem(table)


def test_tsm_absent_is_device_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="configfs-tsm"):
        TsmAttester(tmp_path / "missing").collect(bytes(64))


def test_tsm_unknown_provider(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="provider"):
        FakeTsm(tmp_path, "arm_cca_guest", b"", ccel=None).collect(bytes(64))


def _gramine_dir(tmp_path: Path, kind: str = "dcap") -> Path:
    dev = tmp_path / "attestation"
    dev.mkdir()
    (dev / "attestation_type").write_text(kind)
    (dev / "quote").write_bytes(fixture_path("dcap_qvl/sgx_quote").read_bytes())
    return dev


def test_gramine_serves_a_real_sgx_quote(tmp_path: Path) -> None:
    dev = _gramine_dir(tmp_path)
    rd = b"Hello, world!" + bytes(51)
    ev = GramineAttester(dev).collect(rd)
    assert isinstance(ev.report, Quote) and ev.kind == "sgx"
    assert (dev / "user_report_data").read_bytes() == rd


def test_gramine_checks(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="Gramine"):
        GramineAttester(tmp_path).collect(bytes(64))
    with pytest.raises(DeviceUnavailable, match="epid"):
        GramineAttester(_gramine_dir(tmp_path, "epid")).collect(bytes(64))
    with pytest.raises(ValueError, match="64"):
        GramineAttester(tmp_path).collect(bytes(32))


HOPPER_REPORT = "nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt"
HOPPER_CHAIN = "nvidia_attestation_sdk/unit_testdata/hopperCertChain.txt"


def test_nvml_serves_a_real_hopper_report() -> None:
    fake = FakeNvml.from_evidence(fixture_path(HOPPER_REPORT), fixture_path(HOPPER_CHAIN), count=2)
    raw = bytes.fromhex(fixture_path(HOPPER_REPORT).read_text().strip())
    attester = NvmlGpuAttester(nvml=fake)
    assert attester.count() == 2
    nonce = raw[4:36]
    evidence = attester.collect([nonce, nonce])
    assert [e.index for e in evidence] == [0, 1]
    assert evidence[0].report.to_bytes() == raw and evidence[0].report.request.nonce == nonce
    want = parse_pem_chain(fixture_path(HOPPER_CHAIN).read_bytes()).ders
    assert parse_pem_chain(evidence[0].certificates).ders == want
    with pytest.raises(AttestationError, match="nonce"):
        attester.collect([bytes(32), bytes(32)])
    with pytest.raises(ValueError, match="nonce"):
        attester.collect([nonce])
    assert fake.initialised == 0  # every NVML session was closed


def test_nvml_refuses_non_cc_gpus() -> None:
    fake = FakeNvml.from_evidence(fixture_path(HOPPER_REPORT), fixture_path(HOPPER_CHAIN), cc_enabled=False)
    with pytest.raises(DeviceUnavailable, match="confidential-computing mode"):
        NvmlGpuAttester(nvml=fake).count()


def test_nvml_without_driver() -> None:
    with pytest.raises(DeviceUnavailable, match="NVML"):
        NvmlGpuAttester(nvml=FakeNvml(available=False)).count()


def test_composite_attester_binds_gpus_into_the_cpu_report(authority: SimulatedAuthority) -> None:
    class SimCpu:
        kind = "tdx"

        def collect(self, report_data: bytes) -> CpuEvidence:
            return CpuEvidence(simulate_tdx_quote(authority, report_data=report_data))

    class SimulatedGpus(FakeNvml):
        def nvmlDeviceGetConfComputeGpuAttestationReport(self, gpu: FakeGpu, nonce: bytes) -> Any:
            gpu.report = simulate_spdm_report(authority, nonce=nonce)[0].to_bytes()
            return super().nvmlDeviceGetConfComputeGpuAttestationReport(gpu, nonce)

    chain = authority.pem("nvidia_leaf", "nvidia_root")
    gpus = SimulatedGpus(gpus=[FakeGpu(cert_chain=chain), FakeGpu(cert_chain=chain)], cc_enabled=True)
    attester = CompositeAttester(SimCpu(), NvmlGpuAttester(nvml=gpus))
    nonce, binding = bytes(range(32)), Binding(bytes(32), 0x20, 1, 3, b"pk", bytes(32))
    ev = attester.collect(nonce, binding)
    assert len(ev.gpus) == 2
    opts = simulation_options(authority, now=NOW)
    result = appraise(
        ev, Policy(allow_simulation=True, gpu="required"), nonce=nonce, binding=binding, options=opts
    )
    assert result.accepted and result.simulated, result.reasons
    swapped = dataclasses.replace(
        ev,
        gpus=(
            dataclasses.replace(ev.gpus[1], index=0),
            ev.gpus[0].__class__(1, ev.gpus[0].report, ev.gpus[0].certificates),
        ),
    )
    bad = appraise(swapped, Policy(allow_simulation=True), nonce=nonce, binding=binding, options=opts)
    assert not bad.accepted and {v.rule for v in bad.violations} == {"require_binding"}


def test_pem_helper_matches_cryptography() -> None:
    der = fixture_path("go_sev_guest/vcek.testcer").read_bytes()
    pem = snp_cert_table_to_pem(_cert_table([(VCEK_GUID, der)]))
    assert x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER) == der
