"""Collecting Azure vTPM evidence inside an Azure confidential VM (SEV-SNP or TDX, with Azure's paravisor).

Protocol, as Azure's guest attestation does it:

1. write the 64 bytes of report data to vTPM NV index 0x01400002 (defined, owner read/write, when absent):
   the paravisor (HCL) then makes a fresh hardware report whose runtime data carries them as ``user-data``;
2. read the HCL report from NV index 0x01400001 (waiting, briefly, until its ``user-data`` is ours);
3. ask the vTPM for a quote of the SHA-256 PCRs 0-23 by the attestation key at persistent handle 0x81000003,
   qualified by the same 64 bytes (the TPMS_ATTEST, a plain RSASSA signature and the PCR values);
4. SEV-SNP: the VCEK and its ASK/ARK from Azure's instance metadata service (IMDS, the THIM endpoint; when it
   cannot answer the evidence carries no VCEK and the verifier's collateral provides it); TDX: the TD quote
   for the HCL report's TDREPORT from IMDS (``/acc/tdquote``).

The vTPM is driven through ``tpm2-tools`` (``tpm2_nvdefine``, ``tpm2_nvwrite``, ``tpm2_nvread``,
``tpm2_quote``): the maintained command-line tools of the tpm2-software project, packaged by every distribution
Azure offers, with no Python bindings to build (``tpm2-pytss`` needs the C TPM2 software stack at build
time). The tools and IMDS are injected (:class:`TpmTools`, :class:`InstanceMetadata`) so tests run the whole
protocol on simulated bytes. Nothing here verifies: the broker does; but evidence that plainly answers other
report data is refused before it is sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cchet.attest.evidence import CpuEvidence
from cchet.attest.tees.azure.kinds import INTERFACE_PATHS, interface_present
from cchet.errors import AttestationError, DeviceUnavailable

if TYPE_CHECKING:
    from cchet.attest.tees.azure.hcl import HclReport

__all__ = [
    "AK_HANDLE",
    "HCL_REPORT_INDEX",
    "INTERFACE_PATHS",
    "REPORT_DATA_INDEX",
    "AzureVtpmAttester",
    "Imds",
    "InstanceMetadata",
    "Tpm2Tools",
    "TpmTools",
    "interface_present",
]

HCL_REPORT_INDEX = 0x01400001
REPORT_DATA_INDEX = 0x01400002
AK_HANDLE = 0x81000003
PCRS = tuple(range(24))
DEFAULT_DEVICE = Path("/dev/tpmrm0")
IMDS_URL = "http://169.254.169.254"
TOOLS = ("tpm2_nvreadpublic", "tpm2_nvdefine", "tpm2_nvwrite", "tpm2_nvread", "tpm2_quote")

log = logging.getLogger("cchet.attest.attesters")


class TpmTools(Protocol):
    """What the attester asks the vTPM."""

    def write_report_data(self, data: bytes) -> None:
        """Write ``data`` to NV index 0x01400002 (defining it when absent)."""

    def read_hcl_report(self) -> bytes:
        """The contents of NV index 0x01400001."""

    def quote(self, qualifying_data: bytes, pcrs: Sequence[int]) -> tuple[bytes, bytes, bytes]:
        """(TPMS_ATTEST, raw RSASSA signature, the SHA-256 PCR values concatenated) of a quote by the AK."""


class InstanceMetadata(Protocol):
    """What the attester asks Azure's instance metadata service."""

    def snp_certificates(self) -> tuple[bytes, bytes]:
        """(VCEK PEM, ASK and ARK PEM) for this host."""

    def td_quote(self, td_report: bytes) -> bytes:
        """The DCAP TD quote for ``td_report``."""


Runner = Callable[[list[str]], bytes]


def _run(args: list[str]) -> bytes:
    try:
        done = subprocess.run(args, capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise DeviceUnavailable(f"{args[0]} not found: install tpm2-tools") from None
    except subprocess.TimeoutExpired:
        raise AttestationError(f"{args[0]} did not finish within 60 s") from None
    if done.returncode != 0:
        raise AttestationError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return done.stdout


class Tpm2Tools:
    """:class:`TpmTools` through ``tpm2-tools`` on ``device`` (``-T device:/dev/tpmrm0``); ``run`` executes one
    command line and returns its standard output (tests inject one)."""

    def __init__(self, device: Path = DEFAULT_DEVICE, run: Runner = _run) -> None:
        self.tcti = f"device:{device}"
        self.run = run

    def _cmd(self, tool: str, *args: str) -> bytes:
        return self.run([tool, "-T", self.tcti, *args])

    def write_report_data(self, data: bytes) -> None:
        index = f"{REPORT_DATA_INDEX:#010x}"
        try:
            self._cmd("tpm2_nvreadpublic", index)
        except AttestationError:  # not defined yet: define it as Azure's guest attestation does
            self._cmd("tpm2_nvdefine", "-C", "o", "-s", str(len(data)), "-a", "ownerread|ownerwrite", index)
        with tempfile.TemporaryDirectory(prefix="cchet-vtpm-") as tmp:
            path = Path(tmp) / "report_data.bin"
            path.write_bytes(data)
            self._cmd("tpm2_nvwrite", "-C", "o", "-i", str(path), index)

    def read_hcl_report(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="cchet-vtpm-") as tmp:
            path = Path(tmp) / "hcl_report.bin"
            self._cmd("tpm2_nvread", "-C", "o", "-o", str(path), f"{HCL_REPORT_INDEX:#010x}")
            return path.read_bytes()

    def quote(self, qualifying_data: bytes, pcrs: Sequence[int]) -> tuple[bytes, bytes, bytes]:
        with tempfile.TemporaryDirectory(prefix="cchet-vtpm-") as tmp:
            out = Path(tmp)
            self._cmd(
                "tpm2_quote",
                "-c",
                f"{AK_HANDLE:#010x}",
                "-l",
                "sha256:" + ",".join(str(i) for i in pcrs),
                "-q",
                qualifying_data.hex(),
                "-g",
                "sha256",
                "-m",
                str(out / "message.bin"),
                "-s",
                str(out / "signature.bin"),
                "-f",
                "plain",
                "-o",
                str(out / "pcrs.bin"),
                "-F",
                "values",
            )
            return tuple((out / f).read_bytes() for f in ("message.bin", "signature.bin", "pcrs.bin"))  # type: ignore[return-value]


class Imds:
    """:class:`InstanceMetadata` over HTTP at ``base`` (Azure's link-local IMDS address)."""

    def __init__(self, base: str = IMDS_URL, timeout_s: float = 10.0) -> None:
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"IMDS base URL must be http(s), got {base!r}")
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s

    def _request(self, request: urllib.request.Request) -> dict[str, object]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s), checked in __init__
                doc = json.loads(response.read())
        except (OSError, ValueError) as e:
            raise AttestationError(f"Azure IMDS {request.full_url}: {e}") from None
        if not isinstance(doc, dict):
            raise AttestationError(f"Azure IMDS {request.full_url}: the answer is not a JSON object")
        return doc

    def snp_certificates(self) -> tuple[bytes, bytes]:
        url = f"{self.base}/metadata/THIM/amd/certification"
        doc = self._request(urllib.request.Request(url, headers={"Metadata": "true"}))  # noqa: S310 - http(s)
        vcek, chain = doc.get("vcekCert"), doc.get("certificateChain")
        if not isinstance(vcek, str) or not isinstance(chain, str):
            raise AttestationError(f"Azure IMDS {url}: no vcekCert and certificateChain in the answer")
        return vcek.encode(), chain.encode()

    def td_quote(self, td_report: bytes) -> bytes:
        url = f"{self.base}/acc/tdquote"
        body = json.dumps({"report": base64.urlsafe_b64encode(td_report).decode().rstrip("=")}).encode()
        request = urllib.request.Request(  # noqa: S310 - http(s), checked in __init__
            url, body, {"Content-Type": "application/json"}, method="POST"
        )
        quote = self._request(request).get("quote")
        if not isinstance(quote, str):
            raise AttestationError(f"Azure IMDS {url}: no quote in the answer")
        try:
            return base64.urlsafe_b64decode(quote + "=" * (-len(quote) % 4))
        except ValueError:
            raise AttestationError(f"Azure IMDS {url}: the quote is not base64url") from None


class AzureVtpmAttester:
    """Collects ``az-snp`` or ``az-tdx`` evidence (module docstring). ``kind`` is ``"unknown"`` until
    :meth:`probe` or :meth:`collect` reads the HCL report; ``expect`` (``az-snp``/``az-tdx``) refuses the other.
    ``wait_s`` bounds the wait for the HCL report to carry the report data just written."""

    def __init__(
        self,
        tools: TpmTools | None = None,
        imds: InstanceMetadata | None = None,
        *,
        device: Path = DEFAULT_DEVICE,
        expect: str | None = None,
        wait_s: float = 5.0,
    ) -> None:
        self.device = Path(device)
        self.tools: TpmTools = tools if tools is not None else Tpm2Tools(self.device)
        self.imds: InstanceMetadata = imds if imds is not None else Imds()
        self.expect = expect
        self.wait_s = wait_s
        self.kind = "unknown"

    def _check_interface(self) -> None:
        if isinstance(self.tools, Tpm2Tools):
            if not self.device.exists():
                raise DeviceUnavailable(
                    f"no TPM at {self.device}: this is not an Azure confidential VM (or the vTPM is hidden); "
                    "for a SIMULATED one use cchet.attest.simulate with 'az-snp' or 'az-tdx'"
                )
            missing = [t for t in TOOLS if shutil.which(t) is None]
            if missing:
                raise DeviceUnavailable(f"{', '.join(missing)} not found: install tpm2-tools")

    def _hcl(self) -> HclReport:
        from cchet.attest.tees.azure.hcl import parse_hcl_report
        from cchet.attest.tees.azure.report import KIND_OF_REPORT_TYPE

        raw = self.tools.read_hcl_report()
        if raw[:4] != b"HCLA":
            raise DeviceUnavailable(
                f"NV index {HCL_REPORT_INDEX:#010x} holds no HCL report: this is not an Azure confidential VM"
            )
        hcl = parse_hcl_report(raw)
        kind = KIND_OF_REPORT_TYPE[hcl.report_type]
        if self.expect is not None and kind != self.expect:
            raise DeviceUnavailable(f"this Azure confidential VM is {kind}, not {self.expect}")
        self.kind = kind
        return hcl

    def probe(self) -> str:
        """Which Azure kind this VM is (``az-snp``, ``az-tdx``), from its current HCL report; sets :attr:`kind`.
        Raises :class:`DeviceUnavailable` without a vTPM, tpm2-tools or an HCL report."""
        self._check_interface()
        self._hcl()
        return self.kind

    def collect(self, report_data: bytes) -> CpuEvidence:
        """Raises ``ValueError`` unless ``report_data`` is 64 bytes, :class:`DeviceUnavailable` without the
        interface (vTPM, tpm2-tools, HCL report), :class:`AttestationError` when the vTPM or IMDS fails or
        answers other report data, :class:`~cchet.errors.EvidenceFormatError` when their bytes do not parse."""
        from cchet.attest.tees.azure.report import assemble
        from cchet.attest.tees.azure.runtime_data import user_data

        if len(report_data) != 64:
            raise ValueError("report_data must be exactly 64 bytes")
        self._check_interface()
        self.tools.write_report_data(report_data)
        deadline = time.monotonic() + self.wait_s
        while True:
            hcl = self._hcl()
            if (user_data(hcl.runtime_data) or "").lower() == report_data.hex():
                break
            if time.monotonic() >= deadline:
                raise AttestationError("the HCL report does not carry the report data written to NV 0x01400002")
            time.sleep(0.25)
        message, signature, pcrs = self.tools.quote(report_data, PCRS)
        if self.kind == "az-snp":
            hardware, certificates = self._snp_certificates()
        else:
            hardware, certificates = self.imds.td_quote(hcl.hardware.to_bytes()), b""
        report = assemble(hcl, message, signature, pcrs, hardware, offsets=(0, 0, 0, 0))
        if report.report_data != report_data:
            raise AttestationError("the vTPM quote carries other qualifying data than requested")
        if report.bound_report_data[:32] != hashlib.sha256(hcl.runtime_data).digest():
            raise AttestationError("the hardware report does not bind the HCL runtime data")
        return CpuEvidence(report, certificates)

    def _snp_certificates(self) -> tuple[bytes, bytes]:
        """(VCEK DER, ASK and ARK PEM) from IMDS, or empty (logged) when IMDS cannot give them: the verifier
        then takes them from its collateral (AMD KDS by chip id and TCB, or the cache)."""
        from cchet.attest.formats.certchain import certificate_der

        try:
            vcek, chain = self.imds.snp_certificates()
        except AttestationError as e:
            log.warning("no VCEK from Azure IMDS (%s): the verifier must get it from AMD KDS or its cache", e)
            return b"", b""
        return certificate_der(vcek, "imds.vcekCert"), chain
