"""Dangerous primitives. Read every docstring before you use anything here.

.. warning::
   ``cchet.hazmat`` hands you raw AES-GCM with caller-chosen nonces, GHASH, and the bytes of data
   keys. Reusing a nonce under one key destroys both confidentiality and integrity; exporting key bytes
   moves them out of cchet's handles. The safe layer (:func:`cchet.seal`, :func:`cchet.unseal`, the
   sealed-stream readers and writers) makes these decisions for you. Use this package only to
   interoperate with another implementation of the sealed-stream format, or to test one.
"""

from cchet.hazmat import aead, ghash
from cchet.hazmat.keys import DataKey, data_key_bytes, data_key_from_bytes

__all__ = ["DataKey", "aead", "data_key_bytes", "data_key_from_bytes", "ghash"]
