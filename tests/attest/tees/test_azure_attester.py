"""The Azure vTPM attester: the whole protocol against a fake vTPM and IMDS serving simulated bytes, the exact
tpm2-tools command lines, path-only detection, and (on a real Azure confidential VM only) the real thing."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from cchet import DeviceUnavailable
from cchet.attest.attesters.composite import CompositeAttester
from cchet.attest.formats.certchain import der_to_pem
from cchet.attest.simulate import SimulatedAuthority, simulation_options
from cchet.attest.tees import tee
from cchet.attest.tees.azure import TEES, kinds
from cchet.attest.tees.azure.attester import (
    AK_HANDLE,
    HCL_REPORT_INDEX,
    INTERFACE_PATHS,
    REPORT_DATA_INDEX,
    AzureVtpmAttester,
    Imds,
    Tpm2Tools,
    _run,
    interface_present,
)
from cchet.attest.tees.azure.report import AzureVtpmReport
from cchet.errors import AttestationError
from cchet.platform.tee import detect_tee
from tests.attest.conftest import NOW

REPORT_DATA = bytes(range(64))


class FakeVtpm:
    """A vTPM and IMDS answering as Azure's do, with simulated evidence made when report data is written."""

    def __init__(self, authority: SimulatedAuthority, kind: str, *, refresh: bool = True, imds: bool = True) -> None:
        self.authority = authority
        self.kind = kind
        self.refresh = refresh
        self.imds_up = imds
        self.report, self.certs = self._make(bytes(64))
        self.calls: list[str] = []

    def _make(self, data: bytes) -> tuple[AzureVtpmReport, bytes]:
        report, certs = tee(self.kind).simulate(self.authority, report_data=data)
        assert isinstance(report, AzureVtpmReport)
        return report, certs

    def write_report_data(self, data: bytes) -> None:
        self.calls.append("write")
        if self.refresh:
            self.report, self.certs = self._make(data)

    def read_hcl_report(self) -> bytes:
        self.calls.append("read")
        return self.report.hcl.to_bytes()

    def quote(self, qualifying_data: bytes, pcrs: Sequence[int]) -> tuple[bytes, bytes, bytes]:
        self.calls.append("quote")
        assert list(pcrs) == list(range(24))
        quote = self.report.quote
        return quote.message, quote.signature, b"".join(self.report.pcrs)

    def snp_certificates(self) -> tuple[bytes, bytes]:
        if not self.imds_up:
            raise AttestationError("Azure IMDS http://169.254.169.254/...: connection refused")
        return der_to_pem(self.report.vcek), self.certs

    def td_quote(self, td_report: bytes) -> bytes:
        assert td_report == self.report.hcl.hardware.to_bytes()
        assert self.report.td_quote is not None
        return self.report.td_quote.to_bytes()


@pytest.mark.parametrize("kind", ["az-snp", "az-tdx"])
def test_collect_follows_the_protocol_and_verifies(authority: SimulatedAuthority, kind: str) -> None:
    fake = FakeVtpm(authority, kind)
    attester = AzureVtpmAttester(fake, fake)
    assert attester.kind == "unknown" and CompositeAttester(attester).tee_kind == kind
    evidence = attester.collect(REPORT_DATA)
    assert fake.calls[-3:] == ["write", "read", "quote"]
    report = evidence.report
    assert isinstance(report, AzureVtpmReport) and report.kind == kind and report.report_data == REPORT_DATA
    _, failures = tee(kind).verify(
        report, evidence.certificates, simulation_options(authority, now=NOW), expected_report_data=REPORT_DATA
    )
    assert failures == []


def test_collect_refuses_what_answers_another_question(authority: SimulatedAuthority) -> None:
    stale = FakeVtpm(authority, "az-snp", refresh=False)
    with pytest.raises(AttestationError, match="does not carry the report data"):
        AzureVtpmAttester(stale, stale, wait_s=0).collect(REPORT_DATA)
    with pytest.raises(ValueError, match="64 bytes"):
        AzureVtpmAttester(stale, stale).collect(b"short")
    other = FakeVtpm(authority, "az-tdx")
    with pytest.raises(DeviceUnavailable, match="is az-tdx, not az-snp"):
        AzureVtpmAttester(other, other, expect="az-snp").collect(REPORT_DATA)

    class NoHcl(FakeVtpm):
        def read_hcl_report(self) -> bytes:
            return bytes(2600)

    empty = NoHcl(authority, "az-snp")
    with pytest.raises(DeviceUnavailable, match="not an Azure confidential VM"):
        AzureVtpmAttester(empty, empty).probe()

    class OtherNonce(FakeVtpm):
        def quote(self, qualifying_data: bytes, pcrs: Sequence[int]) -> tuple[bytes, bytes, bytes]:
            q = self._make(bytes(64))[0]
            return q.quote.message, q.quote.signature, b"".join(q.pcrs)

    replay = OtherNonce(authority, "az-snp")
    with pytest.raises(AttestationError, match="other qualifying data"):
        AzureVtpmAttester(replay, replay).collect(REPORT_DATA)


def test_without_imds_the_snp_evidence_carries_no_vcek(
    authority: SimulatedAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeVtpm(authority, "az-snp", imds=False)
    with caplog.at_level(logging.WARNING, logger="cchet.attest.attesters"):
        evidence = AzureVtpmAttester(fake, fake).collect(REPORT_DATA)
    assert evidence.report.vcek == b"" and evidence.certificates == b""
    assert "no VCEK from Azure IMDS" in caplog.text
    _, failures = tee("az-snp").verify(
        evidence.report, b"", simulation_options(authority, now=NOW), expected_report_data=None
    )
    assert {getattr(f, "check", "") for f in failures} == {"amd.certificates_missing"}


def test_tpm2_tools_command_lines(tmp_path: Path) -> None:
    seen: list[list[str]] = []
    defined = {"yes": False}

    def run(args: list[str]) -> bytes:
        seen.append(args)
        tool = args[0]
        if tool == "tpm2_nvreadpublic" and not defined["yes"]:
            raise AttestationError("tpm2_nvreadpublic failed (1): the index does not exist")
        if tool == "tpm2_nvdefine":
            defined["yes"] = True
        if tool == "tpm2_nvwrite":
            assert Path(args[args.index("-i") + 1]).read_bytes() == REPORT_DATA
        if tool == "tpm2_nvread":
            Path(args[args.index("-o") + 1]).write_bytes(b"HCLA report")
        if tool == "tpm2_quote":
            for flag, content in (("-m", b"message"), ("-s", b"signature"), ("-o", b"pcrs")):
                Path(args[args.index(flag) + 1]).write_bytes(content)
        return b""

    tools = Tpm2Tools(tmp_path / "tpmrm0", run)
    tools.write_report_data(REPORT_DATA)
    assert tools.read_hcl_report() == b"HCLA report"
    assert tools.quote(REPORT_DATA, range(24)) == (b"message", b"signature", b"pcrs")
    tcti = ["-T", f"device:{tmp_path / 'tpmrm0'}"]
    report_index, hcl_index = f"{REPORT_DATA_INDEX:#010x}", f"{HCL_REPORT_INDEX:#010x}"
    assert seen[0] == ["tpm2_nvreadpublic", *tcti, report_index]
    assert seen[1] == ["tpm2_nvdefine", *tcti, "-C", "o", "-s", "64", "-a", "ownerread|ownerwrite", report_index]
    assert seen[2][:5] == ["tpm2_nvwrite", *tcti, "-C", "o"] and seen[2][-1] == report_index
    assert seen[3][:5] == ["tpm2_nvread", *tcti, "-C", "o"] and seen[3][-1] == hcl_index
    quote = seen[4]
    assert quote[:5] == ["tpm2_quote", *tcti, "-c", f"{AK_HANDLE:#010x}"]
    assert quote[quote.index("-l") + 1] == "sha256:" + ",".join(str(i) for i in range(24))
    assert quote[quote.index("-q") + 1] == REPORT_DATA.hex()
    assert quote[quote.index("-f") + 1] == "plain" and quote[quote.index("-F") + 1] == "values"
    tools.write_report_data(REPORT_DATA)  # defined now: no second nvdefine
    assert [a[0] for a in seen[5:]] == ["tpm2_nvreadpublic", "tpm2_nvwrite"]
    assert not list(tmp_path.iterdir()), "temporary files are removed"


def test_running_the_tools_reports_what_is_missing_or_failing() -> None:
    with pytest.raises(DeviceUnavailable, match="install tpm2-tools"):
        _run(["cchet-no-such-tpm2-tool"])
    if shutil.which("false"):
        with pytest.raises(AttestationError, match="failed"):
            _run(["false"])


def test_the_real_attester_says_why_it_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="no TPM at"):
        AzureVtpmAttester(device=tmp_path / "tpmrm0").collect(REPORT_DATA)
    with pytest.raises(ValueError, match="http"):
        Imds("file:///etc/passwd")


def test_local_attester_and_info_check_paths_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not interface_present(tmp_path)
    monkeypatch.setattr(kinds, "_ROOT", tmp_path)
    for family in TEES.values():
        assert family.local_attester() is None
    for p in INTERFACE_PATHS:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).touch()
    assert interface_present(tmp_path)
    attester = TEES["az-snp"].local_attester()
    assert isinstance(attester, AzureVtpmAttester) and attester.kind == "unknown"
    info = detect_tee(tmp_path)
    assert info.kind == "az-snp" and "/sys/bus/vmbus" in info.found


@pytest.mark.skipif(
    not interface_present() or shutil.which("tpm2_quote") is None,
    reason="not an Azure confidential VM: needs /dev/tpmrm0, /sys/bus/vmbus and tpm2-tools (run as root there)",
)
def test_real_vtpm_evidence_verifies() -> None:  # pragma: no cover - runs on Azure confidential VMs only
    from cchet.attest.verify.options import default_options

    attester = AzureVtpmAttester()
    evidence = attester.collect(REPORT_DATA)
    _, failures = tee(attester.kind).verify(
        evidence.report, evidence.certificates, default_options(), expected_report_data=REPORT_DATA
    )
    assert [f for f in failures if not f.startswith("no Intel collateral")] == []
    subprocess.run(["tpm2_nvreadpublic", f"{HCL_REPORT_INDEX:#010x}"], check=True)
