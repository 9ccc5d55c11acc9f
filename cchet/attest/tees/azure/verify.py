"""Verifying Azure vTPM evidence: the whole chain from the vendor root to the PCR values.

1. The hardware report, by cchet's own verifiers: SEV-SNP (:func:`~cchet.attest.verify.amd.verify_snp_device`:
   the VCEK from the evidence, ASK/ARK from the certificates given or collateral, to a pinned ARK; the report
   signature, the key's TCB, the chip id) or TDX (:func:`~cchet.attest.verify.intel.verify_quote_device`: the
   TD quote to the Intel SGX Root CA, Intel collateral and TCB status). Their failures are theirs
   (``amd.*``, ``intel.*``); nothing is fetched here that the options' collateral source would not fetch.
2. ``azure.runtime_data``: the hardware-signed report data starts with SHA-256 of the HCL runtime data.
3. ``azure.ak``: the runtime data holds the vTPM attestation key.
4. ``azure.quote_signature``: that key signed the TPM quote (RSASSA-PKCS1-v1_5, SHA-256).
5. ``azure.pcr_digest``: the quote's PCR digest is SHA-256 over the PCR values given (one SHA-256 bank).
6. ``azure.td_report`` (TDX): the HCL report's TDREPORT and the TD quote say the same, and the TDREPORT's
   hashes of its TEE_TCB_INFO and TDINFO are theirs.
7. ``azure.nonce`` (when an expected value is given): the quote's qualifying data is exactly those bytes.

Every check runs; a check whose input is missing (no attestation key to check a signature with) is reported
by the check that found it missing. The broker's binding of cchet's transcript is the quote's qualifying data
(:attr:`AzureVtpmReport.report_data`), compared in appraisal.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cchet.attest.formats.certchain import der_to_pem
from cchet.attest.formats.dcap import Quote, TdReportBody
from cchet.attest.formats.snp import SnpReport
from cchet.attest.tees.azure.hcl import HclReport
from cchet.attest.tees.azure.report import AzureVtpmReport
from cchet.attest.tees.azure.runtime_data import attestation_key
from cchet.attest.tees.azure.tdreport import TdReport
from cchet.attest.tees.azure.tpm import TPM_ALG_SHA256, TpmQuote
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import VerifyOptions
from cchet.attest.verify.verified import VerifiedDevice

__all__ = [
    "attestation_key_of",
    "nonce_failures",
    "pcr_failures",
    "quote_signature_failures",
    "runtime_data_failures",
    "td_report_failures",
    "verify_azure_device",
]


def runtime_data_failures(hcl: HclReport, bound_report_data: bytes) -> list[str]:
    """``azure.runtime_data``: ``bound_report_data[0:32]`` (the SNP report's, or the TD quote's) is SHA-256 of
    the HCL report's runtime data."""
    digest = hashlib.sha256(hcl.runtime_data).digest()
    if hmac.compare_digest(digest, bound_report_data[:32]):
        return []
    return [
        Failure(
            "azure.runtime_data",
            f"hardware report_data[0:32] is {bound_report_data[:32].hex()}, but SHA-256 of the HCL runtime data "
            f"is {digest.hex()}",
        )
    ]


def attestation_key_of(hcl: HclReport) -> tuple[rsa.RSAPublicKey | None, list[str]]:
    """``azure.ak``: the vTPM attestation key in the runtime data, or None and the failure saying why."""
    try:
        return attestation_key(hcl.runtime_data), []
    except ValueError as e:
        return None, [Failure("azure.ak", f"no vTPM attestation key: {e}")]


def quote_signature_failures(quote: TpmQuote, key: rsa.RSAPublicKey) -> list[str]:
    """``azure.quote_signature``: ``key`` signed the quote's TPMS_ATTEST (RSASSA-PKCS1-v1_5, SHA-256)."""
    try:
        key.verify(quote.signature, quote.message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return [Failure("azure.quote_signature", "the TPM quote's signature does not verify with the HCLAkPub key")]
    return []


def pcr_failures(quote: TpmQuote, pcrs: tuple[bytes, ...]) -> list[str]:
    """``azure.pcr_digest``: the quote selects one SHA-256 bank with one given value per selected PCR, and its
    pcrDigest is SHA-256 over those values in order."""
    banks = quote.attest.pcr_select
    if len(banks) != 1 or banks[0].hash_alg != TPM_ALG_SHA256:
        algs = ", ".join(f"{b.hash_alg:#06x}" for b in banks) or "none"
        return [Failure("azure.pcr_digest", f"the quote selects PCR banks [{algs}], expected one SHA-256 bank")]
    selected = banks[0].indices
    if len(selected) != len(pcrs):
        return [
            Failure(
                "azure.pcr_digest", f"the quote selects {len(selected)} PCRs, the evidence gives {len(pcrs)} values"
            )
        ]
    digest = hashlib.sha256(b"".join(pcrs)).digest()
    if not hmac.compare_digest(digest, quote.attest.pcr_digest):
        return [
            Failure(
                "azure.pcr_digest",
                f"SHA-256 of the PCR values is {digest.hex()}, the quote's pcrDigest {quote.attest.pcr_digest.hex()}",
            )
        ]
    return []


def td_report_failures(td_report: TdReport, td_quote: Quote) -> list[str]:
    """``azure.td_report``: the TDREPORT in the HCL report carries the TD quote's report data and measurements,
    and the SHA-384 hashes of its TEE_TCB_INFO and TDINFO (which its MAC covers)."""
    body = td_quote.body
    if not isinstance(body, TdReportBody):
        return [Failure("azure.td_report", "the TD quote carries no TD report body")]
    pairs = {
        "report_data": (td_report.report_data, body.report_data),
        "tee_tcb_svn": (td_report.tee_tcb_svn, body.tee_tcb_svn),
        "mr_seam": (td_report.mr_seam, body.mr_seam),
        "mr_signer_seam": (td_report.mr_signer_seam, body.mr_signer_seam),
        "seam_attributes": (td_report.seam_attributes, body.seam_attributes),
        "td_attributes": (td_report.td_attributes, body.td_attributes),
        "xfam": (td_report.xfam, body.xfam),
        "mr_td": (td_report.mr_td, body.mr_td),
        "mr_config_id": (td_report.mr_config_id, body.mr_config_id),
        "mr_owner": (td_report.mr_owner, body.mr_owner),
        "mr_owner_config": (td_report.mr_owner_config, body.mr_owner_config),
        **{f"rtmr{i}": (td_report.rtmrs[i], body.rtmrs[i]) for i in range(4)},
    }
    if body.tee_tcb_svn2 is not None and body.mr_service_td is not None:  # a TD 1.5 body (quote v5)
        pairs["tee_tcb_svn2"] = (td_report.tee_tcb_svn2, body.tee_tcb_svn2)
        pairs["mr_service_td"] = (td_report.servtd_hash, body.mr_service_td)
    differ = [name for name, (a, b) in pairs.items() if a != b]
    if hashlib.sha384(td_report.tee_tcb_info()).digest() != td_report.tee_tcb_info_hash:
        differ.append("tee_tcb_info_hash (not the SHA-384 of its TEE_TCB_INFO)")
    if hashlib.sha384(td_report.td_info()).digest() != td_report.tee_info_hash:
        differ.append("tee_info_hash (not the SHA-384 of its TDINFO)")
    if not differ:
        return []
    return [Failure("azure.td_report", f"the HCL report's TDREPORT differs from the TD quote in {', '.join(differ)}")]


def nonce_failures(quote: TpmQuote, expected: bytes) -> list[str]:
    """``azure.nonce``: the quote's qualifying data is exactly ``expected`` (no padding, no truncation)."""
    got = quote.attest.extra_data
    if hmac.compare_digest(got, expected):
        return []
    return [
        Failure(
            "azure.nonce",
            f"the TPM quote's qualifying data is {got.hex()} ({len(got)} bytes), expected {expected.hex()} "
            f"({len(expected)} bytes)",
        )
    ]


def verify_azure_device(
    report: AzureVtpmReport,
    certificates: bytes,
    options: VerifyOptions,
    *,
    expected_report_data: bytes | None = None,
) -> tuple[VerifiedDevice, list[str]]:
    """The verified CPU device and every failure (module docstring). ``certificates`` (PEM) add to the
    evidence's VCEK: the ASK and ARK, when the collateral source should not provide them. Raises
    :class:`~cchet.errors.EvidenceFormatError` only when a certificate does not decode."""
    from cchet.attest.verify.amd import verify_snp_device
    from cchet.attest.verify.intel import verify_quote_device

    failures: list[str] = []
    hardware = report.hcl.hardware
    if isinstance(hardware, SnpReport):
        pem = der_to_pem(report.vcek) if report.vcek else b""
        device, found = verify_snp_device(hardware, pem + certificates, options)
    else:
        assert report.td_quote is not None  # the parser pairs every TDX HCL report with its TD quote
        device, found = verify_quote_device(report.td_quote, options)
        found += td_report_failures(hardware, report.td_quote)
    failures += found
    failures += runtime_data_failures(report.hcl, report.bound_report_data)
    key, ak_failures = attestation_key_of(report.hcl)
    failures += ak_failures
    if key is not None:
        failures += quote_signature_failures(report.quote, key)
    failures += pcr_failures(report.quote, report.pcrs)
    if expected_report_data is not None:
        failures += nonce_failures(report.quote, expected_report_data)
    verified = VerifiedDevice(
        "cpu", report.kind, device.simulated, device.anchor, device.tcb_status, device.advisory_ids
    )
    return verified, failures
