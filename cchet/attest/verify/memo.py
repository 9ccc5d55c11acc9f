"""Memoised pure steps of verification: decoding certificates and CRLs, and checking signatures.

Each result is a deterministic function of its exact input bytes (or of immutable objects decoded from
them), so caching cannot change a verdict; nothing that depends on the time is cached (validity windows,
CRL freshness, collateral dates and TCB status are evaluated on every verification). The caches are bounded
(least recently used entries go first) and per process; :func:`clear` empties them, e.g. to measure a cold
verification. Decoding errors are raised, never cached.
"""

from __future__ import annotations

import collections
import functools
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from cchet.attest.formats.pck import PckExtensions, parse_pck_extensions
from cchet.errors import EvidenceFormatError

__all__ = [
    "certificate",
    "certificates",
    "clear",
    "crl",
    "crl_issuer",
    "crl_issuer_problem",
    "crl_lists",
    "fingerprint",
    "issued_by",
    "pck_extensions",
    "signature_valid",
]


_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


def _decoded(data: bytes, field: str) -> x509.Certificate:
    """Decodes one certificate and the parts verification reads first (validity, extensions, key), so a
    malformed certificate fails here as :class:`EvidenceFormatError`; unlike
    :func:`~cchet.attest.formats.certchain.load_certificate` it does not build and format the names (their
    DER structure is parsed on load), which is most of that function's cost."""
    try:
        pem = data.lstrip().startswith(b"-----")
        cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc)
        _ = (cert.signature_hash_algorithm, cert.extensions, cert.public_key())
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension) as e:
        raise EvidenceFormatError(f"certificate does not decode: {e}", field=field) from None
    return cert


@functools.lru_cache(maxsize=1024)
def certificates(pem: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of PEM text, in order; raises :class:`~cchet.errors.EvidenceFormatError` when there
    are none or one does not decode."""
    blocks = [part[part.index(_BEGIN) :] + _END for part in pem.split(_END)[:-1] if _BEGIN in part]
    if not blocks:
        raise EvidenceFormatError("no PEM certificate found", offset=0, field="certificates")
    return tuple(certificate(b, f"certificate[{i}]") for i, b in enumerate(blocks))


@functools.lru_cache(maxsize=1024)
def _certificate(data: bytes) -> x509.Certificate:
    return _decoded(data, "certificate")


def certificate(data: bytes, field: str = "certificate") -> x509.Certificate:
    """One DER or PEM certificate (memoised on its bytes); raises :class:`~cchet.errors.EvidenceFormatError`
    naming ``field``."""
    try:
        return _certificate(data)
    except EvidenceFormatError:
        return _decoded(data, field)  # raises again, naming the field


@functools.lru_cache(maxsize=4096)
def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when ``issuer`` signed ``cert`` (names and signature, RSA-PSS included), else why not."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as e:
        return str(e) or "bad signature"
    return None


@functools.lru_cache(maxsize=256)
def crl(data: bytes | str) -> x509.CertificateRevocationList:
    """A CRL from DER, PEM or hex text; raises ``ValueError`` when it is none of these."""
    from cchet.attest.verify.crl import decode_crl

    return decode_crl(data.encode() if isinstance(data, str) else bytes(data))


@functools.lru_cache(maxsize=256)
def crl_issuer(data: bytes | str) -> x509.Name:
    """The CRL's issuer name (building it is the slow part of comparing it)."""
    return crl(data).issuer


@functools.lru_cache(maxsize=1024)
def crl_issuer_problem(data: bytes | str, issuer: x509.Certificate) -> str | None:
    """None when ``issuer`` is the CRL's issuer (name) and signed it (key), else what is wrong."""
    parsed = crl(data)
    if crl_issuer(data) != issuer.subject:
        return f"issued by {parsed.issuer.rfc4514_string()}, not {issuer.subject.rfc4514_string()}"
    try:
        valid = parsed.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):
        valid = False
    return None if valid else f"signature does not verify with {issuer.subject.rfc4514_string()}"


@functools.lru_cache(maxsize=4096)
def crl_lists(data: bytes | str, cert: x509.Certificate) -> bool:
    """Whether the CRL was issued under ``cert``'s issuer name and lists its serial number."""
    listed = crl(data).get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    return listed and crl_issuer(data) == cert.issuer


@functools.lru_cache(maxsize=4096)
def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex."""
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


_VALID: collections.OrderedDict[tuple[x509.Certificate, bytes, bytes, str], None] = collections.OrderedDict()
_VALID_MAX = 4096


def signature_valid(cert: x509.Certificate, message: bytes, raw: bytes, *, byteorder: str = "big") -> bool:
    """:func:`~cchet.attest.verify.ecdsa.ecdsa_valid` by a certificate's key. Signatures that verified are
    remembered by (certificate, SHA-256 of the message, signature); failures are always recomputed."""
    from cchet.attest.verify.ecdsa import ecdsa_valid_uncached

    key = (cert, hashlib.sha256(message).digest(), bytes(raw), byteorder)
    if key in _VALID:
        _VALID.move_to_end(key)
        return True
    if not ecdsa_valid_uncached(cert, message, raw, byteorder=byteorder):
        return False
    _VALID[key] = None
    if len(_VALID) > _VALID_MAX:
        _VALID.popitem(last=False)
    return True


@functools.lru_cache(maxsize=1024)
def pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """The SGX extensions of a PCK certificate; raises :class:`~cchet.errors.EvidenceFormatError`."""
    return parse_pck_extensions(cert)


def clear() -> None:
    """Empties every cache of this module."""
    for fn in (
        certificates,
        _certificate,
        issued_by,
        pck_extensions,
        crl,
        crl_issuer,
        crl_issuer_problem,
        crl_lists,
        fingerprint,
    ):
        fn.cache_clear()
    _VALID.clear()
