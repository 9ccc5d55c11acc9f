"""NVIDIA reference integrity manifests (RIMs): signed SWID tags holding the golden GPU measurements.

A RIM is trusted when its enveloped XMLDSig verifies (checked by ``signxml``; cchet does not implement
XMLDSig) with the first certificate of its KeyInfo, and that certificate chains, valid now, to the pinned
NVIDIA RIM root. Only the XML the signature covers is read afterwards. A RIM then applies to a report when
its ``colloquialVersion`` equals the report's driver version (driver RIM) or VBIOS version (VBIOS RIM)
and its product is the device's chip;
every active measurement index ``i`` of the RIM must equal one of its alternatives in SPDM measurement block
``i + 1``, and no index may be claimed by both RIMs.

Raises nothing for bad RIMs: every problem is a :class:`~cchet.attest.verify.failure.Failure`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.verify.chain import verify_chain
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import TrustAnchor

__all__ = ["Rim", "RimCheck", "check_rims", "rim_version", "verify_rim"]

_DS = "{http://www.w3.org/2000/09/xmldsig#}"
_SWID = "{http://standards.iso.org/iso/19770/-2/2015/schema.xsd}"


@dataclass(frozen=True)
class Rim:
    """What a verified RIM says: version, product, and active measurement index -> accepted values."""

    version: str
    product: str
    measurements: dict[int, tuple[bytes, ...]]


@dataclass(frozen=True)
class RimCheck:
    """``status`` is ``match`` (driver and VBIOS RIMs verified and every measurement matched), ``mismatch``,
    or ``not compared`` (a RIM was missing or did not verify)."""

    status: str
    versions: tuple[str, ...]
    failures: tuple[str, ...]


def _parse(data: bytes) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(data, parser=parser)


def rim_version(data: bytes) -> str | None:
    """The unverified ``colloquialVersion`` of a RIM, for choosing which RIM to verify; None if unreadable."""
    from lxml import etree

    try:
        meta = _parse(data).find(f"{_SWID}Meta")
    except (etree.XMLSyntaxError, ValueError):
        return None
    return None if meta is None else meta.get("colloquialVersion")


def _rim_from(signed: Any) -> Rim:
    meta = signed.find(f"{_SWID}Meta")
    measurements: dict[int, tuple[bytes, ...]] = {}
    for res in signed.iter(f"{_SWID}Resource"):
        if res.get("type") != "Measurement" or res.get("active", "").lower() != "true":
            continue
        n = int(res.get("alternatives", "1"))
        values = []
        for k in range(n):
            value = next((v for key, v in res.attrib.items() if key.endswith(f"}}Hash{k}") or key == f"Hash{k}"), None)
            if value is not None:
                values.append(bytes.fromhex(value))
        measurements[int(res.get("index"))] = tuple(values)
    return Rim(
        version=(meta.get("colloquialVersion") if meta is not None else None) or "",
        product=(meta.get("product") if meta is not None else None) or "",
        measurements=measurements,
    )


def verify_rim(
    data: bytes, anchors: tuple[TrustAnchor, ...], now: dt.datetime, *, what: str
) -> tuple[Rim | None, list[str]]:
    """Verifies one RIM (signature and chain); returns what it says (None unless the signature verified)."""
    from signxml.exceptions import InvalidInput, SignXMLException
    from signxml.verifier import SignatureConfiguration, XMLVerifier

    failures: list[str] = []
    try:
        root = _parse(data)
        certs = [
            x509.load_der_x509_certificate(base64.b64decode("".join((e.text or "").split())))
            for e in root.iter(f"{_DS}X509Certificate")
        ]
    except (ValueError, binascii.Error, SyntaxError) as e:  # lxml's XMLSyntaxError is a SyntaxError
        return None, [Failure("nvidia.rim_signature", f"{what}: RIM does not parse: {e}")]
    if not certs:
        return None, [Failure("nvidia.rim_chain", f"{what}: RIM carries no signing certificate")]
    _anchor, chain_failures = verify_chain(certs, anchors, now, what=f"{what}.chain", check="nvidia.rim_chain")
    failures.extend(chain_failures)
    leaf = certs[0]
    config = SignatureConfiguration(
        require_x509=True,
        # the certificate's validity is the chain check's job; here only the signature is judged
        verification_time=leaf.not_valid_before_utc + dt.timedelta(seconds=1),
    )
    try:
        result = XMLVerifier().verify(
            data, x509_cert=leaf.public_bytes(serialization.Encoding.PEM).decode(), expect_config=config
        )
    except (SignXMLException, InvalidInput, ValueError) as e:
        failures.append(Failure("nvidia.rim_signature", f"{what}: XMLDSig does not verify: {e}"))
        return None, failures
    signed = result.signed_xml if not isinstance(result, list) else result[0].signed_xml
    if signed is None or signed.tag != f"{_SWID}SoftwareIdentity":
        failures.append(Failure("nvidia.rim_signature", f"{what}: the signature does not cover the SWID tag"))
        return None, failures
    try:
        return _rim_from(signed), failures
    except (ValueError, TypeError) as e:
        failures.append(Failure("nvidia.rim_signature", f"{what}: signed RIM is malformed: {e}"))
        return None, failures


def check_rims(
    report: SpdmReport,
    driver_rim: bytes | None,
    vbios_rim: bytes | None,
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    *,
    what: str,
    chip: str | None = None,
) -> RimCheck:
    """Verifies the driver and VBIOS RIMs given and compares the report's measurements with them. ``chip``
    (``GH100``, ``GB100``: the device leaf's) must be each RIM's product when known."""
    failures: list[str] = []
    rims: list[Rim] = []
    versions = []
    for kind, data, want in (
        ("driver", driver_rim, report.driver_version),
        ("vbios", vbios_rim, report.vbios_version),
    ):
        if data is None:
            continue
        rim, rim_failures = verify_rim(data, anchors, now, what=f"{what}.{kind}_rim")
        failures.extend(rim_failures)
        if rim is None:
            continue
        versions.append(rim.version)
        if want is None or rim.version.lower() != want.lower():
            failures.append(
                Failure("nvidia.rim_version", f"{what}: {kind} RIM is for version {rim.version}, the report has {want}")
            )
            continue
        if chip is not None and rim.product and rim.product != chip:
            failures.append(
                Failure("nvidia.rim_version", f"{what}: {kind} RIM is for {rim.product}, the device is a {chip}")
            )
            continue
        rims.append(rim)
    measured = report.measurements()
    mismatched = False
    claimed: set[int] = set()
    for rim in rims:
        for index, values in sorted(rim.measurements.items()):
            if index in claimed:
                mismatched = True
                failures.append(Failure("nvidia.measurements", f"{what}: measurement {index} is in both RIMs"))
            claimed.add(index)
            if measured.get(index + 1) not in values:
                mismatched = True
                failures.append(
                    Failure("nvidia.measurements", f"{what}: measurement {index} differs from RIM {rim.version}")
                )
    if mismatched:
        status = "mismatch"
    elif len(rims) == 2 and not failures:
        status = "match"
    else:
        status = "not compared"
    return RimCheck(status, tuple(versions), tuple(failures))
