"""Intel DCAP quotes: SGX quote v3, TDX quote v4 (TD 1.0 body) and quote v5 (SGX, TD 1.0 or TD 1.5 body).

Layouts follow Intel's "SGX ECDSA Quote Library API" (quote v3, v4) and the TDX DCAP quote v5 addendum:

- header, 48 bytes: version, attestation key type, TEE type, QE SVN, PCE SVN, QE vendor id, user data;
- v5 only: body type (1 = SGX, 2 = TD 1.0, 3 = TD 1.5) and body size;
- the report body: 384-byte SGX enclave report, 584-byte TD 1.0 report or 648-byte TD 1.5 report;
- the signature data, prefixed by its length: the ECDSA-P256 quote signature and attestation key, then the
  QE report, its PCK signature, the QE auth data and the certification data. In v3 those follow directly; in
  v4 and v5 they sit inside certification data of type 6, whose own certification data (type 5) is the PEM
  PCK chain.

Parsing checks sizes and reserved fields only; nothing here verifies a signature. Bytes after the signature
data (real quote buffers are often zero-padded) are kept in ``trailing`` so that ``serialize`` is the exact
inverse of ``parse_quote``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cchet.attest.formats.cursor import Cursor, require_zero
from cchet.errors import EvidenceFormatError

__all__ = [
    "ATTESTATION_KEY_ECDSA_P256",
    "BODY_SGX",
    "BODY_TD10",
    "BODY_TD15",
    "CERT_DATA_PCK_CHAIN",
    "CERT_DATA_QE_REPORT",
    "HEADER_SIZE",
    "INTEL_QE_VENDOR_ID",
    "TEE_TYPE_SGX",
    "TEE_TYPE_TDX",
    "CertificationData",
    "QeCertification",
    "Quote",
    "QuoteHeader",
    "QuoteSignature",
    "SgxReportBody",
    "TdReportBody",
    "parse_quote",
    "parse_sgx_report_body",
    "parse_td_report_body",
    "serialize_quote",
]

HEADER_SIZE = 48
SGX_REPORT_SIZE = 384
TD10_REPORT_SIZE = 584
TD15_REPORT_SIZE = 648
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
ATTESTATION_KEY_ECDSA_P256 = 2
BODY_SGX = 1
BODY_TD10 = 2
BODY_TD15 = 3
CERT_DATA_PCK_CHAIN = 5
CERT_DATA_QE_REPORT = 6
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

_BODY_SIZES = {BODY_SGX: SGX_REPORT_SIZE, BODY_TD10: TD10_REPORT_SIZE, BODY_TD15: TD15_REPORT_SIZE}


@dataclass(frozen=True)
class QuoteHeader:
    """The 48-byte quote header. ``tee_type`` is 0 for SGX and 0x81 for TDX."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes

    def to_bytes(self) -> bytes:
        return (
            struct.pack("<HHIHH", self.version, self.attestation_key_type, self.tee_type, self.qe_svn, self.pce_svn)
            + self.qe_vendor_id
            + self.user_data
        )


@dataclass(frozen=True)
class SgxReportBody:
    """An SGX enclave report body (384 bytes): the SGX quote body and the QE report."""

    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def debug(self) -> bool:
        """The enclave's DEBUG attribute (bit 1 of the attribute flags)."""
        return bool(self.attributes[0] & 0x02)

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                self.cpu_svn,
                struct.pack("<I", self.misc_select),
                bytes(12),
                self.isv_ext_prod_id,
                self.attributes,
                self.mr_enclave,
                bytes(32),
                self.mr_signer,
                bytes(32),
                self.config_id,
                struct.pack("<HHH", self.isv_prod_id, self.isv_svn, self.config_svn),
                bytes(42),
                self.isv_family_id,
                self.report_data,
            )
        )


@dataclass(frozen=True)
class TdReportBody:
    """A TD report body: TD 1.0 (584 bytes) or, with ``tee_tcb_svn2`` and ``mr_service_td``, TD 1.5 (648)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_service_td: bytes | None = None

    @property
    def debug(self) -> bool:
        """TUD.DEBUG, bit 0 of TD attributes."""
        return bool(self.td_attributes[0] & 0x01)

    @property
    def is_td15(self) -> bool:
        return self.tee_tcb_svn2 is not None

    def to_bytes(self) -> bytes:
        out = b"".join(
            (
                self.tee_tcb_svn,
                self.mr_seam,
                self.mr_signer_seam,
                self.seam_attributes,
                self.td_attributes,
                self.xfam,
                self.mr_td,
                self.mr_config_id,
                self.mr_owner,
                self.mr_owner_config,
                *self.rtmrs,
                self.report_data,
            )
        )
        if self.tee_tcb_svn2 is not None and self.mr_service_td is not None:
            out += self.tee_tcb_svn2 + self.mr_service_td
        return out


@dataclass(frozen=True)
class CertificationData:
    """Certification data: a type and its bytes. Type 5 holds the PEM PCK chain, leaf first."""

    cert_type: int
    data: bytes

    def to_bytes(self) -> bytes:
        return struct.pack("<HI", self.cert_type, len(self.data)) + self.data

    def pem_certificates(self) -> tuple[bytes, ...]:
        """The PEM blocks of a type-5 chain, in order (leaf first); empty for other types. Raises
        :class:`EvidenceFormatError` when there are more than
        :data:`~cchet.attest.formats.certchain.MAX_CERTIFICATES` (their sizes are checked as they decode)."""
        from cchet.attest.formats.certchain import check_certificate_count  # loads x509: import late

        if self.cert_type != CERT_DATA_PCK_CHAIN:
            return ()
        end = b"-----END CERTIFICATE-----"
        out = []
        for part in self.data.split(end)[:-1]:
            start = part.find(b"-----BEGIN CERTIFICATE-----")
            if start >= 0:
                out.append(part[start:] + end + b"\n")
        check_certificate_count(len(out), "certification_data.pck_chain")
        return tuple(out)


@dataclass(frozen=True)
class QeCertification:
    """The QE report, its PCK signature, the QE auth data and the certification data (the PCK chain)."""

    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification: CertificationData

    def to_bytes(self) -> bytes:
        return (
            self.qe_report.to_bytes()
            + self.qe_report_signature
            + struct.pack("<H", len(self.qe_auth_data))
            + self.qe_auth_data
            + self.certification.to_bytes()
        )


@dataclass(frozen=True)
class QuoteSignature:
    """Quote signature data. ``signature`` is r||s (big-endian, 32 bytes each) over header||body;
    ``attestation_key`` is the raw P-256 point x||y. ``wrapped`` says whether the QE certification sits inside
    certification data of type 6 (v4, v5) or follows directly (v3)."""

    signature: bytes
    attestation_key: bytes
    qe: QeCertification
    wrapped: bool
    padding: bytes = b""

    def to_bytes(self) -> bytes:
        inner = self.qe.to_bytes()
        if self.wrapped:
            inner = struct.pack("<HI", CERT_DATA_QE_REPORT, len(inner)) + inner
        return self.signature + self.attestation_key + inner + self.padding


@dataclass(frozen=True)
class Quote:
    """A parsed DCAP quote. ``kind`` is ``"tdx"`` or ``"sgx"``; ``body_type`` is set for v5 only."""

    header: QuoteHeader
    body: TdReportBody | SgxReportBody
    signature: QuoteSignature
    body_type: int | None = None
    trailing: bytes = b""

    @property
    def kind(self) -> str:
        return "tdx" if self.header.tee_type == TEE_TYPE_TDX else "sgx"

    @property
    def report_data(self) -> bytes:
        return self.body.report_data

    def signed_bytes(self) -> bytes:
        """The bytes the attestation key signs: the header, the v5 body descriptor, and the body."""
        body = self.body.to_bytes()
        prefix = b"" if self.body_type is None else struct.pack("<HI", self.body_type, len(body))
        return self.header.to_bytes() + prefix + body

    def to_bytes(self) -> bytes:
        sig = self.signature.to_bytes()
        return self.signed_bytes() + struct.pack("<I", len(sig)) + sig + self.trailing


def parse_sgx_report_body(cur: Cursor, field: str = "sgx_report") -> SgxReportBody:
    """Reads a 384-byte SGX report body; reserved ranges must be zero."""
    cpu_svn = cur.take(16, f"{field}.cpu_svn")
    misc_select = cur.u32(f"{field}.misc_select")
    off = cur.offset
    require_zero(cur.take(12, f"{field}.reserved1"), offset=off, field=f"{field}.reserved1")
    isv_ext_prod_id = cur.take(16, f"{field}.isv_ext_prod_id")
    attributes = cur.take(16, f"{field}.attributes")
    mr_enclave = cur.take(32, f"{field}.mr_enclave")
    off = cur.offset
    require_zero(cur.take(32, f"{field}.reserved2"), offset=off, field=f"{field}.reserved2")
    mr_signer = cur.take(32, f"{field}.mr_signer")
    off = cur.offset
    require_zero(cur.take(32, f"{field}.reserved3"), offset=off, field=f"{field}.reserved3")
    config_id = cur.take(64, f"{field}.config_id")
    isv_prod_id = cur.u16(f"{field}.isv_prod_id")
    isv_svn = cur.u16(f"{field}.isv_svn")
    config_svn = cur.u16(f"{field}.config_svn")
    off = cur.offset
    require_zero(cur.take(42, f"{field}.reserved4"), offset=off, field=f"{field}.reserved4")
    isv_family_id = cur.take(16, f"{field}.isv_family_id")
    report_data = cur.take(64, f"{field}.report_data")
    return SgxReportBody(
        cpu_svn=cpu_svn,
        misc_select=misc_select,
        isv_ext_prod_id=isv_ext_prod_id,
        attributes=attributes,
        mr_enclave=mr_enclave,
        mr_signer=mr_signer,
        config_id=config_id,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        config_svn=config_svn,
        isv_family_id=isv_family_id,
        report_data=report_data,
    )


def parse_td_report_body(cur: Cursor, *, td15: bool, field: str = "td_report") -> TdReportBody:
    """Reads a TD 1.0 (584-byte) or TD 1.5 (648-byte) report body."""
    tee_tcb_svn = cur.take(16, f"{field}.tee_tcb_svn")
    mr_seam = cur.take(48, f"{field}.mr_seam")
    mr_signer_seam = cur.take(48, f"{field}.mr_signer_seam")
    seam_attributes = cur.take(8, f"{field}.seam_attributes")
    td_attributes = cur.take(8, f"{field}.td_attributes")
    xfam = cur.take(8, f"{field}.xfam")
    mr_td = cur.take(48, f"{field}.mr_td")
    mr_config_id = cur.take(48, f"{field}.mr_config_id")
    mr_owner = cur.take(48, f"{field}.mr_owner")
    mr_owner_config = cur.take(48, f"{field}.mr_owner_config")
    rtmrs = (
        cur.take(48, f"{field}.rtmr0"),
        cur.take(48, f"{field}.rtmr1"),
        cur.take(48, f"{field}.rtmr2"),
        cur.take(48, f"{field}.rtmr3"),
    )
    report_data = cur.take(64, f"{field}.report_data")
    svn2 = cur.take(16, f"{field}.tee_tcb_svn2") if td15 else None
    service = cur.take(48, f"{field}.mr_service_td") if td15 else None
    return TdReportBody(
        tee_tcb_svn=tee_tcb_svn,
        mr_seam=mr_seam,
        mr_signer_seam=mr_signer_seam,
        seam_attributes=seam_attributes,
        td_attributes=td_attributes,
        xfam=xfam,
        mr_td=mr_td,
        mr_config_id=mr_config_id,
        mr_owner=mr_owner,
        mr_owner_config=mr_owner_config,
        rtmrs=rtmrs,
        report_data=report_data,
        tee_tcb_svn2=svn2,
        mr_service_td=service,
    )


def _parse_certification(cur: Cursor, field: str) -> CertificationData:
    cert_type = cur.u16(f"{field}.type")
    size = cur.u32(f"{field}.size")
    return CertificationData(cert_type, cur.take(size, f"{field}.data"))


def _parse_qe_certification(cur: Cursor) -> QeCertification:
    qe_report = parse_sgx_report_body(cur, "qe_report")
    qe_sig = cur.take(64, "qe_report_signature")
    auth_len = cur.u16("qe_auth_data.size")
    auth = cur.take(auth_len, "qe_auth_data")
    cert = _parse_certification(cur, "certification_data")
    return QeCertification(qe_report, qe_sig, auth, cert)


def _parse_header(cur: Cursor) -> QuoteHeader:
    version = cur.u16("header.version")
    if version not in (3, 4, 5):
        raise EvidenceFormatError(f"unsupported quote version {version}", offset=0, field="header.version")
    ak_type = cur.u16("header.attestation_key_type")
    if ak_type != ATTESTATION_KEY_ECDSA_P256:
        raise EvidenceFormatError(
            f"unsupported attestation key type {ak_type}", offset=2, field="header.attestation_key_type"
        )
    tee_type = cur.u32("header.tee_type")
    if tee_type not in (TEE_TYPE_SGX, TEE_TYPE_TDX):
        raise EvidenceFormatError(f"unknown TEE type {tee_type:#x}", offset=4, field="header.tee_type")
    if version == 4 and tee_type != TEE_TYPE_TDX:
        raise EvidenceFormatError("quote v4 carries TDX reports only", offset=4, field="header.tee_type")
    if version == 3 and tee_type != TEE_TYPE_SGX:
        raise EvidenceFormatError("quote v3 carries SGX reports only", offset=4, field="header.tee_type")
    return QuoteHeader(
        version=version,
        attestation_key_type=ak_type,
        tee_type=tee_type,
        qe_svn=cur.u16("header.qe_svn"),
        pce_svn=cur.u16("header.pce_svn"),
        qe_vendor_id=cur.take(16, "header.qe_vendor_id"),
        user_data=cur.take(20, "header.user_data"),
    )


def parse_quote(data: bytes) -> Quote:
    """Parses a DCAP quote (v3, v4 or v5). Raises :class:`EvidenceFormatError` naming the offset and field.

    Checks sizes, versions, types and reserved fields only; signatures are the verifier's job.
    """
    cur = Cursor(data)
    header = _parse_header(cur)
    body_type: int | None = None
    body: TdReportBody | SgxReportBody
    if header.version == 5:
        body_type = cur.u16("body.type")
        size_off = cur.offset
        body_size = cur.u32("body.size")
        if body_type not in _BODY_SIZES:
            raise EvidenceFormatError(f"unknown body type {body_type}", offset=size_off - 2, field="body.type")
        if body_size != _BODY_SIZES[body_type]:
            raise EvidenceFormatError(
                f"body size {body_size} != {_BODY_SIZES[body_type]}", offset=size_off, field="body.size"
            )
        if (body_type == BODY_SGX) != (header.tee_type == TEE_TYPE_SGX):
            raise EvidenceFormatError("body type does not match TEE type", offset=size_off - 2, field="body.type")
        sub = cur.sub(body_size, "body")
        if body_type == BODY_SGX:
            body = parse_sgx_report_body(sub, "sgx_report")
        else:
            body = parse_td_report_body(sub, td15=body_type == BODY_TD15)
    elif header.tee_type == TEE_TYPE_TDX:
        body = parse_td_report_body(cur, td15=False)
    else:
        body = parse_sgx_report_body(cur, "sgx_report")
    sig_len = cur.u32("signature_data.size")
    sig_cur = cur.sub(sig_len, "signature_data")
    signature = sig_cur.take(64, "quote_signature")
    attestation_key = sig_cur.take(64, "attestation_key")
    if header.version == 3:
        qe = _parse_qe_certification(sig_cur)
        wrapped = False
    else:
        off = sig_cur.offset
        outer_type = sig_cur.u16("certification_data.type")
        if outer_type != CERT_DATA_QE_REPORT:
            raise EvidenceFormatError(
                f"expected certification data type 6, found {outer_type}",
                offset=off,
                field="certification_data.type",
            )
        outer_size = sig_cur.u32("certification_data.size")
        qe = _parse_qe_certification(sig_cur.sub(outer_size, "certification_data.data"))
        wrapped = True
    padding = sig_cur.rest()
    return Quote(
        header=header,
        body=body,
        signature=QuoteSignature(signature, attestation_key, qe, wrapped, padding),
        body_type=body_type,
        trailing=cur.rest(),
    )


def serialize_quote(quote: Quote) -> bytes:
    """The exact bytes of ``quote``; the inverse of :func:`parse_quote`."""
    return quote.to_bytes()
