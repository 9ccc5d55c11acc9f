"""SIMULATED NVIDIA RIMs: SWID tags with golden GPU measurements, XMLDSig-signed (by ``signxml``) with a RIM
signing chain whose root says SIMULATED.

SIMULATED RIMS PROTECT NOTHING: the signing keys live in memory in :class:`SimulatedRimSigner` (made fresh
per signer), so they exist only for tests and demonstrations of the RIM checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["SimulatedRimSigner", "simulate_rim"]

_SWID = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
_SHA384 = "http://www.w3.org/2001/04/xmlenc#sha384"
_RIMIM = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NVIDIA (SIMULATED by cchet)"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "SIMULATED"),
        ]
    )


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int,
    not_after: dt.datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA384())
    )


@dataclass(frozen=True)
class SimulatedRimSigner:
    """An in-memory RIM root (subject says SIMULATED) and the leaf that signs RIMs."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate

    @classmethod
    def create(cls, *, leaf_not_after: dt.datetime | None = None) -> SimulatedRimSigner:
        """A fresh root and leaf (P-384); the leaf expires at ``leaf_not_after`` (default 2049)."""
        root_key = ec.generate_private_key(ec.SECP384R1())
        leaf_key = ec.generate_private_key(ec.SECP384R1())
        end = dt.datetime(2049, 12, 31, tzinfo=dt.UTC)
        root_name = _name("NVIDIA CoRIM signing Root CA SIMULATED")
        root = _cert(root_name, root_key, root_name, root_key, ca=True, serial=1, not_after=end)
        leaf = _cert(
            _name("RIM L4 Signer SIMULATED"),
            leaf_key,
            root_name,
            root_key,
            ca=False,
            serial=2,
            not_after=leaf_not_after or end,
        )
        return cls(root_key, root, leaf_key, leaf)

    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)


def simulate_rim(
    signer: SimulatedRimSigner,
    *,
    version: str,
    measurements: Mapping[int, bytes],
    product: str = "GH100",
    tampered: Mapping[int, bytes] | None = None,
) -> bytes:
    """A signed SWID RIM for ``version`` whose active measurement ``i`` (the RIM's 0-based index, SPDM block
    ``i + 1``) is ``measurements[i]``. ``tampered`` replaces values after signing (the signature then fails),
    for tests."""
    from lxml import etree
    from signxml.algorithms import DigestAlgorithm, SignatureMethod
    from signxml.signer import XMLSigner

    root = etree.Element(f"{{{_SWID}}}SoftwareIdentity", nsmap={None: _SWID, "ns2": _SHA384, "ns1": _RIMIM})
    root.set("name", product)
    root.set("tagId", f"cchet-simulated-{product}-{version}")
    root.set("version", "1.0")
    meta = etree.SubElement(root, f"{{{_SWID}}}Meta")
    meta.set("colloquialVersion", version)
    meta.set("product", product)
    meta.set(f"{{{_RIMIM}}}PlatformManufacturerId", "5703")
    payload = etree.SubElement(root, f"{{{_SWID}}}Payload")
    for index in sorted(measurements):
        res = etree.SubElement(payload, f"{{{_SWID}}}Resource")
        res.set("type", "Measurement")
        res.set("index", str(index))
        res.set("active", "True")
        res.set("alternatives", "1")
        res.set(f"{{{_SHA384}}}Hash0", measurements[index].hex())
        res.set("size", str(len(measurements[index])))
    pem = [c.public_bytes(serialization.Encoding.PEM).decode() for c in (signer.leaf, signer.root)]
    key = signer.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signed = XMLSigner(signature_algorithm=SignatureMethod.ECDSA_SHA384, digest_algorithm=DigestAlgorithm.SHA384).sign(
        root, key=key, cert=pem
    )
    data: bytes = etree.tostring(signed)
    for index, value in (tampered or {}).items():
        data = data.replace(measurements[index].hex().encode(), value.hex().encode())
    return data
