"""Memoised pure steps of verification: decoding certificates and CRLs, and checking signatures.

Each result is a deterministic function of its exact input bytes (or of certificates decoded from them), so
caching cannot change a verdict; nothing that depends on the time is cached (validity windows, CRL freshness,
collateral dates and TCB status are evaluated on every verification). Decoding errors are raised, never
cached, and failed signature checks are recomputed every time.

Bounds. Entries are keyed by SHA-256 digests (of the input bytes, of a certificate's DER), never by the
inputs or by certificate objects. They share one least-recently-used cache whose entries' estimated sizes
add up to at most :data:`CACHE_BUDGET_BYTES`; the least recently used go first, and an entry larger than the
whole budget is not kept. Estimates: a decoded certificate or CRL, :data:`DECODED_ENTRY_BASE_BYTES` plus
:data:`DECODED_BYTES_PER_INPUT_BYTE` per byte of its input (about 1.2 times what a decoded 1.3 KB
certificate was measured to hold); PCK extensions, :data:`DECODED_ENTRY_BASE_BYTES`; anything else (a
verdict, the digests of a PEM text), :data:`SMALL_ENTRY_BYTES`. An entry counts everything it keeps alive,
even what another entry keeps alive too, so shared objects are over-counted, never under-counted. Evidence
caps its certificates' number and size (:mod:`cchet.attest.formats.certchain`), so no certificate entry
exceeds about 42 KB. The budget bounds what the cache holds, not what one verification allocates while it
runs. :func:`clear` empties the cache (e.g. to measure a cold verification), :func:`estimated_bytes` reports
its accounting; the cache is per process and safe to use from several threads.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Callable
from typing import TypeVar, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cchet.attest.formats.certchain import (
    CertificateIdentity,
    certificate_der,
    certificate_identity,
    name_text,
    parse_pem_chain,
)
from cchet.attest.formats.der import tlv_span
from cchet.attest.formats.pck import PckExtensions, parse_pck_extensions
from cchet.errors import EvidenceFormatError

__all__ = [
    "CACHE_BUDGET_BYTES",
    "DECODED_BYTES_PER_INPUT_BYTE",
    "DECODED_ENTRY_BASE_BYTES",
    "SMALL_ENTRY_BYTES",
    "certificate",
    "certificates",
    "clear",
    "crl",
    "crl_issuer_problem",
    "crl_lists",
    "estimated_bytes",
    "fingerprint",
    "identity",
    "issued_by",
    "pck_extensions",
    "signature_valid",
]

CACHE_BUDGET_BYTES = 8 * 1024 * 1024
"""The most the cache's entries may add up to (estimated sizes): about 1,100 decoded 1.3 KB certificates."""

DECODED_ENTRY_BASE_BYTES = 1024
"""Estimated fixed cost of a decoded certificate or CRL entry."""

DECODED_BYTES_PER_INPUT_BYTE = 5
"""Estimated cost of a decoded certificate or CRL per byte of its input."""

SMALL_ENTRY_BYTES = 512
"""Estimated cost of any other entry: a signature verdict, a CRL lookup, the digests of a PEM text."""

_T = TypeVar("_T")
_MISSING = object()


def _decoded_bytes(input_length: int) -> int:
    return DECODED_ENTRY_BASE_BYTES + DECODED_BYTES_PER_INPUT_BYTE * input_length


class _Decoded:
    """A certificate decoded by this module and its identity (kept together, so the identity of a certificate
    this module returned is a lookup)."""

    __slots__ = ("cert", "identity", "tbs")

    def __init__(self, cert: x509.Certificate, identity: CertificateIdentity, tbs: bytes) -> None:
        self.cert = cert
        self.identity = identity
        self.tbs = tbs  # the signed part, cut from the DER it was decoded from


class _Cache:
    """The byte-budgeted LRU. ``by_object`` maps ``id(cert)`` to the :class:`_Decoded` entry that holds
    ``cert``: the entry keeps the object alive, so the id cannot be reused while the mapping exists, and
    evicting the entry removes the mapping."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: collections.OrderedDict[tuple[object, ...], tuple[object, int]] = collections.OrderedDict()
        self.by_object: dict[int, _Decoded] = {}
        self.nbytes = 0

    def get(self, key: tuple[object, ...]) -> object:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return _MISSING
            self.entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[object, ...], value: _T, size: int) -> _T:
        """Stores ``value`` (unless an entry for ``key`` is already there, whose value is returned instead),
        then evicts least recently used entries until the total is within :data:`CACHE_BUDGET_BYTES`; an
        entry larger than the whole budget is not stored."""
        with self.lock:
            present = self.entries.get(key)
            if present is not None:
                return cast(_T, present[0])
            if size > CACHE_BUDGET_BYTES:
                return value
            self.entries[key] = (value, size)
            self.nbytes += size
            if isinstance(value, _Decoded):
                self.by_object[id(value.cert)] = value
            while self.nbytes > CACHE_BUDGET_BYTES:
                _, (old, old_size) = self.entries.popitem(last=False)
                self.nbytes -= old_size
                if isinstance(old, _Decoded):
                    del self.by_object[id(old.cert)]
            return value

    def decoded(self, cert: x509.Certificate) -> _Decoded | None:
        entry = self.by_object.get(id(cert))  # one dict lookup: atomic, no lock needed
        return entry if entry is not None and entry.cert is cert else None

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.by_object.clear()
            self.nbytes = 0


_CACHE = _Cache()


def _memoised(key: tuple[object, ...], size: int, compute: Callable[[], _T]) -> _T:
    value = _CACHE.get(key)
    if value is not _MISSING:
        return cast(_T, value)
    return _CACHE.put(key, compute(), size)


def _digest(data: bytes | str) -> bytes:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).digest()


def _decode(der: bytes, field: str) -> _Decoded:
    """Decodes one DER certificate and the parts verification reads first (validity, extensions, key), so a
    malformed certificate fails here as :class:`EvidenceFormatError`; unlike
    :func:`~cchet.attest.formats.certchain.load_certificate` it does not build and format the names (their
    DER structure is parsed on load), which is most of that function's cost."""
    try:
        cert = x509.load_der_x509_certificate(der)
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc)
        _ = (cert.signature_hash_algorithm, cert.extensions, cert.public_key())
        signed = _signed_part(der)
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension) as e:
        raise EvidenceFormatError(f"certificate does not decode: {e}", field=field) from None
    return _Decoded(cert, certificate_identity(cert, der), signed)


def _signed_part(der: bytes) -> bytes:
    """The first element of a certificate's or CRL's outer SEQUENCE (what its signature covers), as the exact
    bytes it was decoded from: ``cryptography`` re-encodes it on every ``tbs_*_bytes`` access (for a CRL of
    a few KB, about as long as checking the signature).

    Raises ``ValueError`` when the signature BIT STRING that follows declares unused bits: ``cryptography``
    returns its bytes all the same, so the same signature would verify under another encoding of the
    certificate, with another fingerprint (a GPU's identity is its certificate's fingerprint)."""
    _, start, _ = tlv_span(der, field="signed")
    _, _, end = tlv_span(der, start, field="signed.tbs")
    _, _, algorithm_end = tlv_span(der, end, field="signed.signature_algorithm")
    tag, bits, bits_end = tlv_span(der, algorithm_end, field="signed.signature")
    if tag != 0x03 or bits == bits_end or der[bits] != 0:
        raise ValueError("its signature is not a BIT STRING of whole bytes (DER requires 0 unused bits)")
    return der[start:end]


_ECDSA = {
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA512,
}


def _ecdsa_signed(
    key: object, algorithm: x509.ObjectIdentifier, signature: bytes, signed: bytes, hash_algorithm: object
) -> bool | None:
    """Whether ``key`` made the ECDSA ``signature`` over ``signed``; None when this is not ECDSA by an EC key
    (then the caller asks ``cryptography`` the general way)."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or algorithm not in _ECDSA:
        return None
    if not isinstance(hash_algorithm, hashes.HashAlgorithm):
        return None
    try:
        key.verify(signature, signed, ec.ECDSA(hash_algorithm))
    except InvalidSignature:
        return False
    return True


def _decoded_der(der: bytes, field: str) -> _Decoded:
    key = ("der", hashlib.sha256(der).digest())
    value = _CACHE.get(key)
    if value is _MISSING:
        value = _CACHE.put(key, _decode(der, field), _decoded_bytes(len(der)))
    return cast(_Decoded, value)


def _pem_text(
    tag: str, text: bytes, split: Callable[[], tuple[bytes, ...]], field: Callable[[int], str]
) -> tuple[x509.Certificate, ...]:
    """The certificates of PEM ``text`` (``split`` into DER certificates), remembered as the digests of their
    DER under ``(tag, SHA-256 of text)`` so that a repeated text is neither split nor base64-decoded again."""
    key = (tag, _digest(text))
    digests = _CACHE.get(key)
    if digests is not _MISSING:
        found = [_CACHE.get(("der", d)) for d in cast(tuple[bytes, ...], digests)]
        if _MISSING not in found:
            return tuple(cast(_Decoded, d).cert for d in found)
    decoded = [_decoded_der(der, field(i)) for i, der in enumerate(split())]
    _CACHE.put(key, tuple(d.identity.fingerprint for d in decoded), SMALL_ENTRY_BYTES)
    return tuple(d.cert for d in decoded)


def certificates(pem: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of PEM text, in order. Raises :class:`~cchet.errors.EvidenceFormatError` when there
    are none, more than :data:`~cchet.attest.formats.certchain.MAX_CERTIFICATES`, one larger than
    :data:`~cchet.attest.formats.certchain.MAX_CERTIFICATE_BYTES`, or one that does not decode."""
    return _pem_text("pem", pem, lambda: parse_pem_chain(pem).ders, lambda i: f"certificate[{i}]")


def certificate(data: bytes, field: str = "certificate") -> x509.Certificate:
    """One DER certificate or PEM block (memoised on its DER); raises :class:`~cchet.errors.EvidenceFormatError`
    naming ``field`` when it is larger than :data:`~cchet.attest.formats.certchain.MAX_CERTIFICATE_BYTES` or
    does not decode."""
    return _decoded_der(certificate_der(data, field), field).cert  # base64 costs less than caching its result


def identity(cert: x509.Certificate) -> CertificateIdentity:
    """The fingerprint, names and key identifiers of ``cert``: a lookup for a certificate this module decoded
    (while it is cached), else computed from its re-encoded DER."""
    decoded = _CACHE.decoded(cert)
    if decoded is not None:
        return decoded.identity
    return certificate_identity(cert, cert.public_bytes(serialization.Encoding.DER))


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex."""
    return identity(cert).fingerprint.hex()


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when ``issuer`` signed ``cert`` (names and signature, RSA-PSS included), else why not."""

    def check() -> str | None:
        decoded = _CACHE.decoded(cert)
        if decoded is not None:  # ECDSA over the exact signed bytes: what verify_directly_issued_by does
            if decoded.identity.issuer != identity(issuer).subject:
                return "Issuer certificate subject does not match certificate issuer."
            valid = _ecdsa_signed(
                issuer.public_key(),
                cert.signature_algorithm_oid,
                cert.signature,
                decoded.tbs,
                cert.signature_hash_algorithm,
            )
            if valid is not None:
                return None if valid else "Signature verification failed"
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as e:
            return str(e) or "bad signature"
        return None

    key = ("issued_by", identity(cert).fingerprint, identity(issuer).fingerprint)
    return _memoised(key, SMALL_ENTRY_BYTES, check)


class _Crl:
    """A decoded CRL and its issuer name as DER (building the name is the slow part of comparing it)."""

    __slots__ = ("crl", "digest", "issuer", "tbs")

    def __init__(self, crl: x509.CertificateRevocationList, der: bytes, digest: bytes) -> None:
        self.crl = crl
        self.digest = digest  # of the input it was decoded from: the key of the facts derived from it
        self.tbs = _signed_part(der)
        self.issuer = _crl_issuer(self.tbs)


def _crl_issuer(tbs: bytes) -> bytes:
    """The issuer name's DER inside a CRL's ``tbsCertList`` (optional version, signature algorithm, issuer),
    cut out rather than rebuilt from ``crl.issuer`` (which makes a Python object per attribute)."""
    _, pos, _ = tlv_span(tbs, field="crl.tbs")
    tag, _, end = tlv_span(tbs, pos, field="crl.tbs")
    if tag == 0x02:  # version
        _, _, end = tlv_span(tbs, end, field="crl.tbs")
    _, _, issuer_end = tlv_span(tbs, end, field="crl.issuer")
    return tbs[end:issuer_end]


def _crl(data: bytes | str) -> _Crl:
    from cchet.attest.verify.crl import decode_crl

    digest = _digest(data)

    def decode() -> _Crl:
        return _Crl(*decode_crl(data.encode() if isinstance(data, str) else bytes(data)), digest)

    return _memoised(("crl", digest), _decoded_bytes(len(data)), decode)


def crl(data: bytes | str) -> x509.CertificateRevocationList:
    """A CRL from DER, PEM or hex text; raises ``ValueError`` when it is none of these."""
    return _crl(data).crl


def crl_issuer_problem(data: bytes | str, issuer: x509.Certificate) -> str | None:
    """None when ``issuer`` is the CRL's issuer (name) and signed it (key), else what is wrong."""

    parsed = _crl(data)  # its digest keys the verdict: the input is hashed once

    def check() -> str | None:
        if parsed.issuer != identity(issuer).subject:
            return f"issued by {name_text(parsed.crl, 'issuer')}, not {name_text(issuer, 'subject')}"
        crl = parsed.crl
        key = issuer.public_key()
        valid = _ecdsa_signed(key, crl.signature_algorithm_oid, crl.signature, parsed.tbs, crl.signature_hash_algorithm)
        if valid is None:
            try:
                valid = crl.is_signature_valid(key)  # type: ignore[arg-type]
            except (TypeError, ValueError, UnsupportedAlgorithm):
                valid = False
        return None if valid else f"signature does not verify with {name_text(issuer, 'subject')}"

    return _memoised(("crl_issuer_problem", parsed.digest, identity(issuer).fingerprint), SMALL_ENTRY_BYTES, check)


def crl_lists(data: bytes | str, cert: x509.Certificate) -> bool:
    """Whether the CRL was issued under ``cert``'s issuer name and lists its serial number."""

    parsed = _crl(data)

    def check() -> bool:
        if parsed.issuer != identity(cert).issuer:
            return False
        return parsed.crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None

    return _memoised(("crl_lists", parsed.digest, identity(cert).fingerprint), SMALL_ENTRY_BYTES, check)


def signature_valid(cert: x509.Certificate, message: bytes, raw: bytes, *, byteorder: str = "big") -> bool:
    """:func:`~cchet.attest.verify.ecdsa.ecdsa_valid` by a certificate's key. Signatures that verified are
    remembered by the SHA-256 of the certificate, of the message and of the signature; failures are always
    recomputed."""
    from cchet.attest.verify.ecdsa import ecdsa_valid_uncached

    key = ("signature", identity(cert).fingerprint, _digest(message), _digest(bytes(raw)), byteorder)
    if _CACHE.get(key) is not _MISSING:
        return True
    if not ecdsa_valid_uncached(cert, message, raw, byteorder=byteorder):
        return False
    _CACHE.put(key, True, SMALL_ENTRY_BYTES)
    return True


def per_certificate(tag: str, cert: x509.Certificate, compute: Callable[[], _T]) -> _T:
    """``compute()``, remembered under ``tag`` and ``cert``'s fingerprint: for a fact that depends on the
    certificate alone (TCB info and QE identity share their signer, so its checks run once)."""
    return _memoised((tag, identity(cert).fingerprint), SMALL_ENTRY_BYTES, compute)


def pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """The SGX extensions of a PCK certificate; raises :class:`~cchet.errors.EvidenceFormatError`."""
    return _memoised(("pck", identity(cert).fingerprint), DECODED_ENTRY_BASE_BYTES, lambda: parse_pck_extensions(cert))


def estimated_bytes() -> int:
    """The estimated size of everything cached now: at most :data:`CACHE_BUDGET_BYTES`."""
    return _CACHE.nbytes


def clear() -> None:
    """Empties the cache."""
    _CACHE.clear()
