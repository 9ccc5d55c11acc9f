"""When a piece of cached collateral stops being usable: the earliest nextUpdate or notAfter inside it."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re

from cryptography import x509

from cchet.attest.verify.amd_certs import load_amd_certificates
from cchet.attest.verify.crl import load_crl
from cchet.errors import EvidenceFormatError

__all__ = ["NEVER", "expiry_of"]

NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)
"""The expiry of collateral that carries no validity period (Hygon's certificates)."""

_X509_IN_XML = re.compile(rb"X509Certificate>\s*([A-Za-z0-9+/=\s]+?)\s*</")


def _intel(data: bytes) -> list[dt.datetime]:
    doc = json.loads(data)
    out = []
    for name in ("tcb_info", "qe_identity"):
        body = json.loads(doc[name])
        out.append(dt.datetime.strptime(body["nextUpdate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC))
    for name in ("pck_crl", "root_ca_crl"):
        nu = load_crl(doc[name]).next_update_utc
        if nu is not None:
            out.append(nu)
    return out


def expiry_of(kind: str, data: bytes) -> dt.datetime | None:
    """The instant ``data`` (collateral of ``kind``: intel, amd-chain, amd-crl, amd-vcek, nvidia-rim, hygon)
    expires, :data:`NEVER` for Hygon certificates (they carry no validity period); None when it cannot be read
    (the verifier will say why when it is used)."""
    try:
        if kind == "intel":
            times = _intel(data)
        elif kind in ("amd-chain", "amd-vcek"):
            times = [c.not_valid_after_utc for c in load_amd_certificates(data)]
        elif kind == "amd-crl":
            nu = load_crl(data).next_update_utc
            times = [nu] if nu else []
        elif kind == "nvidia-rim":
            times = [
                x509.load_der_x509_certificate(base64.b64decode(m.group(1))).not_valid_after_utc
                for m in _X509_IN_XML.finditer(data)
            ]
        elif kind == "hygon":
            from cchet.attest.tees.csv.certs import parse_certificates

            times = [NEVER] if parse_certificates(data) else []
        else:
            return None
    except (ValueError, KeyError, TypeError, binascii.Error, EvidenceFormatError):
        return None
    return min(times) if times else None
