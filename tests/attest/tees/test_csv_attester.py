"""The CSV guest attester against a fake ``/dev/csv-guest`` (the ioctl injected), and how ``cchet info`` and the
local attester find the interface (paths only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cchet.attest.simulate import SimulatedAuthority
from cchet.attest.tees import tee
from cchet.attest.tees.csv.attester import GET_ATTESTATION_REPORT, CsvAttester
from cchet.attest.tees.csv.report import CsvReport
from cchet.attest.tees.csv.simulate import SimulatedHygon, simulate_csv_report
from cchet.attest.tees.csv.sm2 import sm3
from cchet.attest.tees.csv.verify import verify_csv_device
from cchet.errors import AttestationError, DeviceUnavailable, EvidenceFormatError
from cchet.platform.tee import detect_tee
from tests.attest.tees.test_csv import REPORT_DATA, options


class FakeFirmware:
    """Answers GET_ATTESTATION_REPORT as the Hygon firmware does: a masked V1 report in the request's page."""

    def __init__(self, authority: SimulatedAuthority, *, tamper: str = "") -> None:
        self.authority = authority
        self.tamper = tamper
        self.requests: list[bytes] = []

    def __call__(self, device: Path, page: bytes) -> bytes:
        assert len(page) == 4096 and device.name == "csv-guest"
        data, mnonce, digest = page[:64], page[64:80], page[80:112]
        assert digest == sm3(data + mnonce) and not any(page[112:])
        self.requests.append(page)
        if self.tamper == "report_data":
            data = bytes(64)
        if self.tamper == "mnonce":
            mnonce = bytes(16)
        report, _ = simulate_csv_report(self.authority, report_data=data, version=1, mnonce=mnonce, masked_signer=True)
        raw = report.to_bytes()[20:]
        if self.tamper == "mac":
            raw = raw[: 336 + 2212 - 1] + bytes([raw[336 + 2212 - 1] ^ 1]) + raw[336 + 2212 :]
        if self.tamper == "short":
            raw = raw[:100]
        return raw


@pytest.fixture
def device(tmp_path: Path) -> Path:
    path = tmp_path / "dev" / "csv-guest"
    path.parent.mkdir()
    path.touch()
    return path


def test_collect_returns_a_verifiable_unmasked_report(
    authority: SimulatedAuthority, device: Path, tmp_path: Path
) -> None:
    hygon = SimulatedHygon.open(authority)
    provisioned = tmp_path / "hsk_cek" / hygon.serial / "hsk_cek.cert"
    provisioned.parent.mkdir(parents=True)
    provisioned.write_bytes(hygon.hsk_cek())
    firmware = FakeFirmware(authority)
    evidence = CsvAttester(device, tmp_path / "hsk_cek", firmware).collect(REPORT_DATA)
    report = evidence.report
    assert isinstance(report, CsvReport) and evidence.kind == "csv"
    assert report.version == 1 and report.report_data == REPORT_DATA
    assert (
        not report.signer_masked and report.signer.pek == hygon.pek.to_bytes() and report.signer.reserved == bytes(32)
    )
    assert report.serial_number == hygon.serial
    assert b"HYGON CERTIFICATE" in evidence.certificates
    device_, failures = verify_csv_device(report, evidence.certificates, options(authority))
    assert failures == [] and device_.simulated
    assert len(firmware.requests) == 1


def test_without_provisioned_hsk_cek_the_evidence_carries_none(
    authority: SimulatedAuthority, device: Path, tmp_path: Path
) -> None:
    evidence = CsvAttester(device, tmp_path / "none", FakeFirmware(authority)).collect(REPORT_DATA)
    assert evidence.certificates == b""


@pytest.mark.parametrize(
    ("tamper", "error", "match"),
    [
        ("report_data", AttestationError, "other report data"),
        ("mnonce", AttestationError, "another mnonce"),
        ("mac", AttestationError, "MAC"),
        ("short", EvidenceFormatError, "page"),
    ],
)
def test_collect_refuses_an_answer_that_is_not_ours(
    authority: SimulatedAuthority, device: Path, tmp_path: Path, tamper: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        CsvAttester(device, tmp_path, FakeFirmware(authority, tamper=tamper)).collect(REPORT_DATA)


def test_collect_needs_the_device_and_64_bytes(authority: SimulatedAuthority, tmp_path: Path) -> None:
    attester = CsvAttester(tmp_path / "absent", tmp_path, FakeFirmware(authority))
    with pytest.raises(DeviceUnavailable, match="not a Hygon CSV guest"):
        attester.collect(REPORT_DATA)
    with pytest.raises(ValueError, match="64 bytes"):
        attester.collect(bytes(32))


def test_the_ioctl_number_is_iowr_d_1_of_16_bytes() -> None:
    assert GET_ATTESTATION_REPORT == 0xC0104401


def test_local_attester_and_cchet_info_check_the_path_only(tmp_path: Path) -> None:
    csv = tee("csv")
    assert csv.local_attester(tmp_path) is None  # type: ignore[call-arg]
    assert detect_tee(tmp_path).kind is None
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "csv-guest").touch()
    found = csv.local_attester(tmp_path)  # type: ignore[call-arg]
    assert isinstance(found, CsvAttester) and found.device == tmp_path / "dev" / "csv-guest"
    info = detect_tee(tmp_path)
    assert info.kind == "csv" and info.found == ("/dev/csv-guest",)


def test_on_this_machine_the_interface_is_absent_or_real() -> None:
    attester = tee("csv").local_attester()
    if attester is None:
        pytest.skip("no /dev/csv-guest here: not a Hygon CSV guest (the real ioctl cannot be exercised)")
    assert isinstance(attester, CsvAttester)


def test_cchet_info_shows_the_csv_guest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cchet import cli
    from cchet.platform import commands, info
    from cchet.platform.fake_nvml import FakeNvml

    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "csv-guest").touch()
    monkeypatch.setattr(commands, "probe", lambda: info.probe(nvml_module=FakeNvml(available=False), root=tmp_path))
    assert cli.main(["info", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"csv"' in out and "/dev/csv-guest" in out
