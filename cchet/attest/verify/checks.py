"""Every verification check, by id: what it checks and the :class:`~cchet.errors.VerificationError` subclass
that reports it when it is the first to fail.

``docs/verification-checks.md`` lists each id with the simulator-built evidence in which only that check
fails and the test that catches its deletion; ``tests/attest/test_check_table.py`` keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from cchet.errors import (
    CertificateChainError,
    CollateralError,
    MeasurementMismatchError,
    NonceMismatchError,
    RevocationError,
    SignatureError,
    TcbError,
    VerificationError,
)

__all__ = ["CHECKS", "Check"]


@dataclass(frozen=True)
class Check:
    """One independent verification check."""

    id: str
    error: type[VerificationError]
    description: str


_ALL = (
    # Intel DCAP (TDX quote v4/v5, SGX quote v3)
    Check("intel.quote_signature", SignatureError, "quote signature by the attestation key"),
    Check("intel.qe_report_signature", SignatureError, "QE report signature by the PCK key"),
    Check("intel.qe_binding", SignatureError, "QE report data = SHA-256(attestation key || QE auth data) || 0*32"),
    Check("intel.pck_chain", CertificateChainError, "PCK -> PCK CA -> pinned Intel SGX Root CA, validity, CA flags"),
    Check("intel.pck_revoked", RevocationError, "PCK leaf not on the PCK CRL, PCK CA not on the root CRL"),
    Check("intel.crl", CollateralError, "PCK and root CRLs: signed by their issuer, valid now"),
    Check("intel.collateral_missing", CollateralError, "TCB info and QE identity present and well formed"),
    Check(
        "intel.tcb_signer",
        CertificateChainError,
        "TCB info and QE identity signed by the Intel SGX TCB Signing certificate (pinned subject, "
        "digital-signature end entity) that the root issued directly",
    ),
    Check("intel.tcb_info_chain", CertificateChainError, "TCB info issuer chain to the pinned root"),
    Check("intel.tcb_info_signature", SignatureError, "TCB info signature by the TCB signing key"),
    Check("intel.tcb_info_validity", CollateralError, "TCB info issueDate <= now <= nextUpdate"),
    Check("intel.tcb_info_platform", CollateralError, "TCB info id, version, FMSPC and PCE id fit the quote"),
    Check("intel.qe_identity_chain", CertificateChainError, "QE identity issuer chain to the pinned root"),
    Check("intel.qe_identity_signature", SignatureError, "QE identity signature by the TCB signing key"),
    Check("intel.qe_identity_validity", CollateralError, "QE identity issueDate <= now <= nextUpdate"),
    Check("intel.qe_identity", MeasurementMismatchError, "QE MRSIGNER, ISV PRODID, MISCSELECT, ATTRIBUTES"),
    Check("intel.tdx_module", MeasurementMismatchError, "TDX module MRSIGNER_SEAM and SEAM attributes"),
    Check("intel.tcb_level", TcbError, "a platform, TDX module and QE TCB level matches"),
    Check("intel.tcb_revoked", TcbError, "the matched TCB level is not Revoked"),
    Check("intel.event_log", MeasurementMismatchError, "the CC event log replays to the quote's RTMRs"),
    Check("intel.nonce", NonceMismatchError, "report data equals the expected nonce"),
    # AMD SEV-SNP
    Check("amd.certificates_missing", CollateralError, "a VCEK/VLEK and its ASK/ASVK and ARK are available"),
    Check("amd.chain", CertificateChainError, "VCEK -> ASK -> ARK or VLEK -> ASVK -> ARK (RSA-PSS), pinned ARK"),
    Check("amd.report_signature", SignatureError, "report signature by the VCEK/VLEK (ECDSA P-384)"),
    Check("amd.revoked", RevocationError, "ASK/ASVK not on the ARK's CRL (when a CRL is given)"),
    Check("amd.crl", CollateralError, "the AMD CRL is signed by the ARK and valid now"),
    Check("amd.reported_tcb", TcbError, "reported TCB equals the TCB in the VCEK's extensions"),
    Check("amd.tcb_order", TcbError, "reported <= committed <= current TCB, component by component"),
    Check("amd.chip_id", MeasurementMismatchError, "chip id equals the VCEK's hwID"),
    Check("amd.product", MeasurementMismatchError, "the key's product stepping is the expected one (if set)"),
    Check("amd.nonce", NonceMismatchError, "report data equals the expected nonce"),
    # NVIDIA GPU (SPDM)
    Check("nvidia.chain", CertificateChainError, "device leaf -> ... -> pinned NVIDIA Device Identity CA"),
    Check("nvidia.spdm_signature", SignatureError, "ECDSA P-384 over request || response by the device leaf"),
    Check("nvidia.fwid", MeasurementMismatchError, "the report's FWID equals the leaf certificate's"),
    Check("nvidia.nonce", NonceMismatchError, "the SPDM request nonce equals the expected nonce"),
    Check("nvidia.rim_signature", SignatureError, "RIM XMLDSig signature"),
    Check("nvidia.rim_chain", CertificateChainError, "RIM signing chain to the pinned NVIDIA RIM root"),
    Check(
        "nvidia.rim_version",
        MeasurementMismatchError,
        "RIM is for the device's chip and the report's driver / VBIOS version",
    ),
    Check("nvidia.measurements", MeasurementMismatchError, "every active RIM measurement matches the report"),
)


def _every_check() -> dict[str, Check]:
    from cchet.attest.tees import extra_checks

    return {c.id: c for c in (*_ALL, *extra_checks())}


CHECKS: dict[str, Check] = _every_check()
"""Every check by id: the built-in vendors' above, then each TEE family's (:mod:`cchet.attest.tees`)."""
