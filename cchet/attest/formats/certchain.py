"""A PEM certificate chain as vendors ship it beside evidence (NVIDIA's device chain, AMD's ASK/ARK bundle),
the limits every piece of evidence keeps to, and what links a certificate to its issuer.

The text is kept exactly, so ``serialize`` gives back the same bytes; :meth:`CertificateChain.certificates`
decodes the blocks, leaf first, with ``cryptography``. One piece of evidence (a PEM chain or bundle, a quote's
PCK chain) holds at most :data:`MAX_CERTIFICATES` certificates of at most :data:`MAX_CERTIFICATE_BYTES` of DER
each; more, or larger, is an :class:`EvidenceFormatError` naming the field and the limit, raised before a
certificate is decoded, so a peer cannot make a verifier decode (and its caches hold) more than that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import warnings
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning

from cchet.attest.formats.der import tlv_span
from cchet.errors import EvidenceFormatError

_SERIAL_ZERO = r"Parsed a serial number which wasn't positive"

__all__ = [
    "MAX_CERTIFICATES",
    "MAX_CERTIFICATE_BYTES",
    "CertificateChain",
    "CertificateIdentity",
    "certificate_der",
    "certificate_identity",
    "check_certificate_count",
    "check_certificate_size",
    "der_to_pem",
    "load_certificate",
    "name_text",
    "parse_pem_chain",
]

MAX_CERTIFICATES = 8
"""The most certificates one piece of evidence may carry. Real ones carry at most 5 (NVIDIA's device chain);
an AMD bundle with ASK, ARK and ASVK, plus the VCEK or VLEK, is 4."""

MAX_CERTIFICATE_BYTES = 8 * 1024
"""The largest certificate (DER bytes) evidence may carry. The largest real one is 1.7 KB (AMD's RSA-4096
ARK, ASK and ASVK)."""

_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


@dataclass(frozen=True)
class CertificateChain:
    """PEM text holding one or more certificates; ``ders`` are their DER encodings in order."""

    text: bytes
    ders: tuple[bytes, ...]

    kind = "pem-chain"

    def certificates(self) -> list[x509.Certificate]:
        """The certificates, leaf first. Raises :class:`EvidenceFormatError` if one does not decode."""
        return [load_certificate(der, field=f"certificate[{i}]") for i, der in enumerate(self.ders)]

    def to_bytes(self) -> bytes:
        return self.text


def name_text(item: x509.Certificate | x509.CertificateRevocationList, which: Literal["subject", "issuer"]) -> str:
    """A certificate's subject or issuer, or a CRL's issuer, in RFC 4514 form, for messages. Verification
    decodes certificates without their names (:mod:`cchet.attest.verify.memo`) and ``cryptography`` decodes a
    name on first access, so a changed byte there surfaces only then: such a name reads "an undecodable
    name" instead of raising."""
    try:
        with warnings.catch_warnings():  # a tampered attribute may decode with a warning: the text still says it
            warnings.simplefilter("ignore")
            return str(getattr(item, which).rfc4514_string())
    except (ValueError, TypeError):  # TypeError: an attribute type and value cryptography refuses to pair
        return f"an undecodable {which} name"


def load_certificate(data: bytes, *, field: str = "certificate") -> x509.Certificate:
    """Decodes one DER certificate or PEM block (:func:`certificate_der`) and every part verification reads
    (names, validity, extensions, public key), so that a malformed certificate fails here, as
    :class:`EvidenceFormatError`, and not halfway through a verification."""
    der = certificate_der(data, field)
    try:
        with warnings.catch_warnings():  # AMD VCEKs carry serial 0: silence that one warning, check nothing less
            warnings.filterwarnings("ignore", message=_SERIAL_ZERO, category=CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_hash_algorithm)
        for _ext in cert.extensions:
            pass
        cert.public_key()
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension) as e:
        raise EvidenceFormatError(f"certificate does not decode: {e}", field=field) from None
    return cert


def der_to_pem(der: bytes) -> bytes:
    """One DER certificate as a PEM block (64-character lines)."""
    body = base64.b64encode(der)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


def check_certificate_count(count: int, field: str) -> None:
    """Raises :class:`EvidenceFormatError` naming ``field`` when ``count`` exceeds :data:`MAX_CERTIFICATES`."""
    if count > MAX_CERTIFICATES:
        raise EvidenceFormatError(
            f"holds {count} certificates, more than the limit of {MAX_CERTIFICATES} (MAX_CERTIFICATES)", field=field
        )


def check_certificate_size(der: bytes, field: str) -> None:
    """Raises :class:`EvidenceFormatError` naming ``field`` when the DER certificate ``der`` is larger than
    :data:`MAX_CERTIFICATE_BYTES`."""
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise EvidenceFormatError(
            f"certificate of {len(der)} bytes exceeds the limit of {MAX_CERTIFICATE_BYTES} bytes "
            "(MAX_CERTIFICATE_BYTES)",
            field=field,
        )


def _blocks(text: bytes) -> list[tuple[int, bytes]]:
    """Each PEM certificate block: where it starts and the base64 text between its markers."""
    blocks = []
    start = text.find(_BEGIN)
    while start >= 0:
        end = text.find(_END, start + len(_BEGIN))
        if end < 0:
            break
        blocks.append((start, text[start + len(_BEGIN) : end]))
        start = text.find(_BEGIN, end + len(_END))
    return blocks


def _block_der(block: tuple[int, bytes], field: str) -> bytes:
    offset, body = block
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceFormatError("bad base64 in PEM block", offset=offset, field=field) from None
    check_certificate_size(der, field)
    return der


def certificate_der(data: bytes, field: str) -> bytes:
    """The DER of one certificate given as DER or as one PEM block. Raises :class:`EvidenceFormatError`
    naming ``field`` when PEM text holds other than one block, a block is not base64, or the certificate is
    larger than :data:`MAX_CERTIFICATE_BYTES`. Decodes nothing beyond base64."""
    if data.lstrip().startswith(b"-----"):
        blocks = _blocks(data)
        if len(blocks) != 1:
            raise EvidenceFormatError(f"expected one PEM certificate, found {len(blocks)}", field=field)
        return _block_der(blocks[0], field)
    check_certificate_size(data, field)
    return data


def parse_pem_chain(text: bytes) -> CertificateChain:
    """Splits PEM text into its certificates. Raises :class:`EvidenceFormatError` if there are none, if a
    block is not base64, or if the text holds more than :data:`MAX_CERTIFICATES` certificates or one larger
    than :data:`MAX_CERTIFICATE_BYTES`. Decodes no certificate."""
    blocks = _blocks(text)
    if not blocks:
        raise EvidenceFormatError("no PEM certificate found", offset=0, field="certificates")
    check_certificate_count(len(blocks), "certificates")
    return CertificateChain(bytes(text), tuple(_block_der(b, f"certificate[{i}]") for i, b in enumerate(blocks)))


@dataclass(frozen=True)
class CertificateIdentity:
    """What links a certificate to its issuer in a certification path.

    ``fingerprint`` is the SHA-256 of its DER. ``issuer`` and ``subject`` are its names as DER (what
    ``x509.Name.public_bytes`` gives), compared byte for byte: the comparison ``cryptography`` makes before
    it checks an issuer's signature, stricter than RFC 5280's case-folding match. ``authority_key_id`` and
    ``subject_key_id`` are its key identifiers, None when it carries none; ``ca`` whether its basic
    constraints make it a CA."""

    fingerprint: bytes
    issuer: bytes
    subject: bytes
    authority_key_id: bytes | None
    subject_key_id: bytes | None
    ca: bool = False

    def may_be_issued_by(self, issuer: CertificateIdentity) -> bool:
        """Whether ``issuer``'s subject is this certificate's issuer name and, when both carry one, its
        subject key identifier is this certificate's authority key identifier. Says nothing about signatures."""
        if issuer.subject != self.issuer:
            return False
        return self.authority_key_id is None or issuer.subject_key_id in (None, self.authority_key_id)

    @property
    def self_issued(self) -> bool:
        """Whether the certificate names itself as its issuer (a root, or a loop of length one)."""
        return self.may_be_issued_by(self)


def certificate_identity(cert: x509.Certificate, der: bytes) -> CertificateIdentity:
    """The :class:`CertificateIdentity` of ``cert``, whose DER is ``der`` (the bytes it was decoded from).
    Raises :class:`EvidenceFormatError` when ``der`` is not a certificate's DER."""
    _, cert_start, _ = tlv_span(der, field="certificate")
    _, tbs_start, _ = tlv_span(der, cert_start, field="certificate.tbs")
    tag, _, end = tlv_span(der, tbs_start, field="certificate.tbs")
    if tag == 0xA0:  # [0] version, then the serial number
        _, _, end = tlv_span(der, end, field="certificate.tbs")
    _, _, issuer_start = tlv_span(der, end, field="certificate.tbs")  # the signature algorithm
    _, _, issuer_end = tlv_span(der, issuer_start, field="certificate.issuer")
    _, _, subject_start = tlv_span(der, issuer_end, field="certificate.tbs")  # the validity
    _, _, subject_end = tlv_span(der, subject_start, field="certificate.subject")
    authority_key_id = subject_key_id = None
    ca = False
    for extension in cert.extensions:  # one pass: looking each up by class walks the list every time
        value = extension.value
        if isinstance(value, x509.AuthorityKeyIdentifier):
            authority_key_id = value.key_identifier
        elif isinstance(value, x509.SubjectKeyIdentifier):
            subject_key_id = value.digest
        elif isinstance(value, x509.BasicConstraints):
            ca = value.ca
    return CertificateIdentity(
        hashlib.sha256(der).digest(),
        der[issuer_start:issuer_end],
        der[subject_start:subject_end],
        authority_key_id,
        subject_key_id,
        ca,
    )
