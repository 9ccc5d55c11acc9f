"""A PEM certificate chain as vendors ship it beside evidence (NVIDIA's device chain, AMD's ASK/ARK bundle).

The text is kept exactly, so ``serialize`` gives back the same bytes; :meth:`CertificateChain.certificates`
decodes the blocks, leaf first, with ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning

from cchet.errors import EvidenceFormatError

_SERIAL_ZERO = r"Parsed a serial number which wasn't positive"

__all__ = ["CertificateChain", "der_to_pem", "load_certificate", "parse_pem_chain"]

_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


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


def load_certificate(data: bytes, *, field: str = "certificate") -> x509.Certificate:
    """Decodes one DER (or PEM) certificate and every part verification reads (names, validity, extensions,
    public key), so that a malformed certificate fails here, as :class:`EvidenceFormatError`, and not halfway
    through a verification."""
    try:
        pem = data.lstrip().startswith(b"-----")
        with warnings.catch_warnings():  # AMD VCEKs carry serial 0: silence that one warning, check nothing less
            warnings.filterwarnings("ignore", message=_SERIAL_ZERO, category=CryptographyDeprecationWarning)
            cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
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


def parse_pem_chain(text: bytes) -> CertificateChain:
    """Splits PEM text into its certificates; raises :class:`EvidenceFormatError` if there are none."""
    ders = []
    for i, m in enumerate(_BLOCK.finditer(text)):
        try:
            ders.append(base64.b64decode(b"".join(m.group(1).split()), validate=True))
        except (binascii.Error, ValueError):
            raise EvidenceFormatError("bad base64 in PEM block", offset=m.start(), field=f"certificate[{i}]") from None
    if not ders:
        raise EvidenceFormatError("no PEM certificate found", offset=0, field="certificates")
    return CertificateChain(bytes(text), tuple(ders))
