"""Simulated Intel DCAP quotes (TDX quote v4 with a TD 1.0 body; SGX quote v3) and their collateral.

SIMULATED EVIDENCE PROTECTS NOTHING: the quoting enclave, PCK and TCB signing keys live in the simulator's
key directory (:mod:`cchet.attest.simulate.authority`).

The quotes are byte-for-byte real DCAP layouts: the attestation key signs header||body, the PCK key signs the
QE report, whose report data is SHA-256(attestation key || QE auth data) || zeros, and certification data
type 6 wraps a type-5 PEM chain PCK -> PCK Platform CA -> root. :func:`simulated_collateral` produces TCB
info, QE identity, both CRLs and the issuer chains in dcap-qvl's ``QuoteCollateralV3`` JSON shape, signed by
the simulated TCB signing key, so ``dcap_qvl.verify_with_root_ca(quote, collateral, root_der, now)`` accepts
the quote under the simulated root, with the TCB status the caller chose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from cchet.attest.formats.dcap import (
    ATTESTATION_KEY_ECDSA_P256,
    CERT_DATA_PCK_CHAIN,
    INTEL_QE_VENDOR_ID,
    TEE_TYPE_SGX,
    TEE_TYPE_TDX,
    CertificationData,
    QeCertification,
    Quote,
    QuoteHeader,
    QuoteSignature,
    SgxReportBody,
    TdReportBody,
)
from cchet.attest.formats.intel_collateral import (
    IdentityLevel,
    PlatformTcb,
    QeIdentity,
    TcbInfo,
    TcbLevel,
    TdxModule,
    TdxModuleIdentity,
)
from cchet.attest.rawsig import point_bytes, raw_from_der
from cchet.attest.simulate.authority import (
    SIM_FMSPC,
    SIM_PCE_ID,
    SIM_PCE_SVN,
    SIM_PCK_COMPONENTS,
    SimulatedAuthority,
)
from cchet.attest.tcb import STATUS_ORDER

__all__ = [
    "SIM_MR_SEAM",
    "SIM_QE_MRENCLAVE",
    "SIM_QE_MRSIGNER",
    "SIM_TEE_TCB_SVN",
    "TCB_STATUSES",
    "default_measurement",
    "simulate_sgx_quote",
    "simulate_tdx_quote",
    "simulated_collateral",
]

TCB_STATUSES = STATUS_ORDER
SIM_TEE_TCB_SVN = bytes.fromhex("04010200000000000000000000000000")
SIM_MR_SEAM = hashlib.sha384(b"cchet SIMULATED TDX module").digest()
SIM_QE_MRENCLAVE = hashlib.sha256(b"cchet SIMULATED quoting enclave").digest()
SIM_QE_MRSIGNER = hashlib.sha256(b"cchet SIMULATED quoting enclave signer").digest()
SIM_QE_ATTRIBUTES = bytes.fromhex("11000000000000000000000000000000")
SIM_QE_ISVSVN = 4
SIM_XFAM = bytes.fromhex("e702060000000000")
_QE_AUTH_DATA = bytes(range(32))


def default_measurement(label: str, size: int = 48) -> bytes:
    """A fixed, recognisable simulated measurement: SHA-384 (or SHA-256 for 32 bytes) of a label."""
    h = hashlib.sha384 if size == 48 else hashlib.sha256
    return h(f"cchet SIMULATED {label}".encode()).digest()[:size]


def _exact(value: bytes, size: int, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        raise ValueError(f"{name} must be exactly {size} bytes")
    return bytes(value)


def _qe_certification(authority: SimulatedAuthority, *, isv_prod_id: int) -> QeCertification:
    ak = point_bytes(authority.keys["intel_attestation"].public_key())
    qe_report = SgxReportBody(
        cpu_svn=bytes(SIM_PCK_COMPONENTS),
        misc_select=0,
        isv_ext_prod_id=bytes(16),
        attributes=SIM_QE_ATTRIBUTES,
        mr_enclave=SIM_QE_MRENCLAVE,
        mr_signer=SIM_QE_MRSIGNER,
        config_id=bytes(64),
        isv_prod_id=isv_prod_id,
        isv_svn=SIM_QE_ISVSVN,
        config_svn=0,
        isv_family_id=bytes(16),
        report_data=hashlib.sha256(ak + _QE_AUTH_DATA).digest() + bytes(32),
    )
    qe_sig = raw_from_der(authority.sign("intel_pck", qe_report.to_bytes()), 32)
    chain = authority.pem("intel_pck", "intel_pck_ca", "intel_root")
    return QeCertification(qe_report, qe_sig, _QE_AUTH_DATA, CertificationData(CERT_DATA_PCK_CHAIN, chain))


def _sign_quote(
    authority: SimulatedAuthority,
    header: QuoteHeader,
    body: TdReportBody | SgxReportBody,
    qe: QeCertification,
    *,
    wrapped: bool,
) -> Quote:
    unsigned = Quote(header, body, QuoteSignature(bytes(64), bytes(64), qe, wrapped))
    sig = raw_from_der(authority.sign("intel_attestation", unsigned.signed_bytes()), 32)
    ak = point_bytes(authority.keys["intel_attestation"].public_key())
    return Quote(header, body, QuoteSignature(sig, ak, qe, wrapped))


def simulate_tdx_quote(
    authority: SimulatedAuthority,
    *,
    report_data: bytes,
    mr_td: bytes | None = None,
    rtmrs: Sequence[bytes] | None = None,
    mr_config_id: bytes = bytes(48),
    mr_owner: bytes = bytes(48),
    mr_owner_config: bytes = bytes(48),
    debug: bool = False,
    tee_tcb_svn: bytes = SIM_TEE_TCB_SVN,
    xfam: bytes = SIM_XFAM,
) -> Quote:
    """A SIMULATED TDX quote v4 over the caller's measurements and exactly 64 bytes of ``report_data``.

    Unset measurements get fixed simulated values (:func:`default_measurement`). ``debug`` sets TUD.DEBUG.
    Raises ``ValueError`` when a field has the wrong length.
    """
    rt = tuple(rtmrs) if rtmrs is not None else tuple(default_measurement(f"RTMR{i}") for i in range(4))
    if len(rt) != 4:
        raise ValueError("rtmrs must hold four 48-byte values")
    body = TdReportBody(
        tee_tcb_svn=_exact(tee_tcb_svn, 16, "tee_tcb_svn"),
        mr_seam=SIM_MR_SEAM,
        mr_signer_seam=bytes(48),
        seam_attributes=bytes(8),
        td_attributes=bytes([1 if debug else 0]) + bytes(2) + b"\x10" + bytes(4),
        xfam=_exact(xfam, 8, "xfam"),
        mr_td=_exact(mr_td if mr_td is not None else default_measurement("MRTD"), 48, "mr_td"),
        mr_config_id=_exact(mr_config_id, 48, "mr_config_id"),
        mr_owner=_exact(mr_owner, 48, "mr_owner"),
        mr_owner_config=_exact(mr_owner_config, 48, "mr_owner_config"),
        rtmrs=(
            _exact(rt[0], 48, "rtmr0"),
            _exact(rt[1], 48, "rtmr1"),
            _exact(rt[2], 48, "rtmr2"),
            _exact(rt[3], 48, "rtmr3"),
        ),
        report_data=_exact(report_data, 64, "report_data"),
    )
    header = QuoteHeader(4, ATTESTATION_KEY_ECDSA_P256, TEE_TYPE_TDX, 0, SIM_PCE_SVN, INTEL_QE_VENDOR_ID, bytes(20))
    return _sign_quote(authority, header, body, _qe_certification(authority, isv_prod_id=2), wrapped=True)


def simulate_sgx_quote(
    authority: SimulatedAuthority,
    *,
    report_data: bytes,
    mr_enclave: bytes | None = None,
    mr_signer: bytes | None = None,
    isv_prod_id: int = 0,
    isv_svn: int = 0,
    debug: bool = False,
) -> Quote:
    """A SIMULATED SGX quote v3 over the caller's enclave identity and exactly 64 bytes of ``report_data``.

    ``debug`` sets the DEBUG attribute. Raises ``ValueError`` when a field has the wrong length.
    """
    flags = 0x05 | (0x02 if debug else 0)  # INIT | MODE64BIT (| DEBUG)
    body = SgxReportBody(
        cpu_svn=bytes(SIM_PCK_COMPONENTS),
        misc_select=0,
        isv_ext_prod_id=bytes(16),
        attributes=bytes([flags]) + bytes(7) + bytes.fromhex("e700000000000000"),
        mr_enclave=_exact(
            mr_enclave if mr_enclave is not None else default_measurement("MRENCLAVE", 32), 32, "mr_enclave"
        ),
        mr_signer=_exact(mr_signer if mr_signer is not None else default_measurement("MRSIGNER", 32), 32, "mr_signer"),
        config_id=bytes(64),
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        config_svn=0,
        isv_family_id=bytes(16),
        report_data=_exact(report_data, 64, "report_data"),
    )
    header = QuoteHeader(
        3, ATTESTATION_KEY_ECDSA_P256, TEE_TYPE_SGX, SIM_QE_ISVSVN, SIM_PCE_SVN, INTEL_QE_VENDOR_ID, bytes(20)
    )
    return _sign_quote(authority, header, body, _qe_certification(authority, isv_prod_id=1), wrapped=False)


def _crl(authority: SimulatedAuthority, issuer: str, now: dt.datetime) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certs[issuer].subject)
        .last_update(now - dt.timedelta(days=1))
        .next_update(now + dt.timedelta(days=30))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.keys[issuer].public_key()),
            critical=False,
        )
        .sign(authority.keys[issuer], hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


def simulated_collateral(
    authority: SimulatedAuthority,
    quote: Quote,
    *,
    now: dt.datetime,
    tcb_status: str = "UpToDate",
    advisory_ids: Sequence[str] = (),
) -> dict[str, str]:
    """SIMULATED Intel collateral for ``quote`` in dcap-qvl's ``QuoteCollateralV3`` JSON field layout.

    One TCB level matches the simulated platform exactly and carries ``tcb_status`` and ``advisory_ids``;
    everything is valid from a day before ``now`` to 30 days after. Raises ``ValueError`` for an unknown
    status.
    """
    if tcb_status not in TCB_STATUSES:
        raise ValueError(f"unknown TCB status {tcb_status!r}; expected one of {', '.join(TCB_STATUSES)}")
    issue = now.astimezone(dt.UTC) - dt.timedelta(days=1)
    next_update = now.astimezone(dt.UTC) + dt.timedelta(days=30)
    body = quote.body
    tdx_svns: tuple[int, ...] | None = None
    module: TdxModule | None = None
    identities: tuple[TdxModuleIdentity, ...] = ()
    if isinstance(body, TdReportBody):
        tdx_svns = tuple(body.tee_tcb_svn)
        module = TdxModule(body.mr_signer_seam, body.seam_attributes, attributes_mask=b"\xff" * 8)
        identities = (
            TdxModuleIdentity(
                f"TDX_{body.tee_tcb_svn[1]:02X}",
                module.mr_signer,
                module.attributes,
                module.attributes_mask,
                (IdentityLevel(body.tee_tcb_svn[0], issue, "UpToDate"),),
            ),
        )
    platform = PlatformTcb(SIM_PCK_COMPONENTS, SIM_PCE_SVN, tdx_svns)
    tcb_info = TcbInfo(
        id="TDX" if quote.kind == "tdx" else "SGX",
        version=3,
        issue_date=issue,
        next_update=next_update,
        fmspc=SIM_FMSPC,
        pce_id=SIM_PCE_ID,
        tcb_type=0,
        tcb_evaluation_data_number=17,
        tcb_levels=(TcbLevel(platform, issue, tcb_status, tuple(advisory_ids)),),
        tdx_module=module,
        tdx_module_identities=identities,
    )
    qe = quote.signature.qe.qe_report
    qe_identity = QeIdentity(
        id="TD_QE" if quote.kind == "tdx" else "QE",
        version=2,
        issue_date=issue,
        next_update=next_update,
        tcb_evaluation_data_number=17,
        miscselect=qe.misc_select,
        miscselect_mask=0xFFFFFFFF,
        attributes=qe.attributes,
        attributes_mask=bytes.fromhex("FBFFFFFFFFFFFFFF0000000000000000"),
        mr_signer=qe.mr_signer,
        isv_prod_id=qe.isv_prod_id,
        tcb_levels=(IdentityLevel(qe.isv_svn, issue, "UpToDate"),),
    )
    tcb_text, qe_text = tcb_info.to_json(), qe_identity.to_json()
    signing_chain = authority.pem("intel_tcb_signing", "intel_root").decode()
    return {
        "pck_crl_issuer_chain": authority.pem("intel_pck_ca", "intel_root").decode(),
        "root_ca_crl": _crl(authority, "intel_root", now).hex(),
        "pck_crl": _crl(authority, "intel_pck_ca", now).hex(),
        "tcb_info_issuer_chain": signing_chain,
        "tcb_info": tcb_text,
        "tcb_info_signature": raw_from_der(authority.sign("intel_tcb_signing", tcb_text.encode()), 32).hex(),
        "qe_identity_issuer_chain": signing_chain,
        "qe_identity": qe_text,
        "qe_identity_signature": raw_from_der(authority.sign("intel_tcb_signing", qe_text.encode()), 32).hex(),
    }
