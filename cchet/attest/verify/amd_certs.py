"""Loading AMD certificates, whose VCEKs carry serial number 0.

RFC 5280 wants positive serials; ``cryptography`` loads a zero serial with a deprecation warning and plans
to refuse it. Only that one warning is silenced, only while AMD certificates load: nothing about how they
are checked changes (signatures, validity, extensions and the chain are verified as for any certificate).
"""

from __future__ import annotations

import warnings

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from cchet.attest.verify import memo

__all__ = ["load_amd_certificates"]

_SERIAL_WARNING = r"Parsed a serial number which wasn't positive"


def load_amd_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from PEM text (one or more) or one DER certificate, in order. Raises
    :class:`~cchet.errors.EvidenceFormatError` when they do not decode, or when there are more than
    :data:`~cchet.attest.formats.certchain.MAX_CERTIFICATES` or one is larger than
    :data:`~cchet.attest.formats.certchain.MAX_CERTIFICATE_BYTES`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SERIAL_WARNING, category=CryptographyDeprecationWarning)
        if b"-----BEGIN" in data:
            return list(memo.certificates(data))
        return [memo.certificate(data, field="amd_certificate")]
