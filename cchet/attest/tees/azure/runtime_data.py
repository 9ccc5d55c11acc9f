"""The HCL report's runtime data: a JSON document with the vTPM's keys (JWKs), the VM configuration and the
user data the guest wrote to NV index 0x01400002.

The attestation key is the JWK whose ``kid`` is ``HCLAkPub`` (RSA, at least 2048 bits); its public part signs
the vTPM's quotes. The document is read strictly (UTF-8, no duplicate member names, exactly one AK), since
the hardware report binds these exact bytes and the verifier must read them the only way they can be read.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["AK_KID", "EK_KID", "attestation_key", "decode_runtime_data", "jwk_of", "names_simulated", "user_data"]

AK_KID = "HCLAkPub"
EK_KID = "HCLEkPub"
MIN_AK_BITS = 2048


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"member {key!r} appears twice")
        out[key] = value
    return out


def decode_runtime_data(raw: bytes) -> dict[str, Any]:
    """The runtime data as a JSON object; ``ValueError`` saying why when it is not one (or repeats a name)."""
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise ValueError("runtime data is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"runtime data is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError("runtime data is not a JSON object")
    return doc


def _b64url_int(text: object, name: str) -> int:
    if not isinstance(text, str) or not text:
        raise ValueError(f"the AK JWK's {name!r} is missing")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"the AK JWK's {name!r} is not base64url") from None
    return int.from_bytes(raw, "big")


def attestation_key(raw: bytes) -> rsa.RSAPublicKey:
    """The vTPM attestation key (``HCLAkPub``) the runtime data holds. Raises ``ValueError`` saying why when
    there is none, more than one, or it is not an RSA key of at least 2048 bits."""
    doc = decode_runtime_data(raw)
    keys = doc.get("keys")
    if not isinstance(keys, list):
        raise ValueError("runtime data has no 'keys' list")
    found = [k for k in keys if isinstance(k, dict) and k.get("kid") == AK_KID]
    if len(found) != 1:
        raise ValueError(f"runtime data holds {len(found)} {AK_KID} keys, expected exactly one")
    jwk = found[0]
    if jwk.get("kty") != "RSA":
        raise ValueError(f"the {AK_KID} key is {jwk.get('kty')!r}, expected an RSA key")
    n, e = _b64url_int(jwk.get("n"), "n"), _b64url_int(jwk.get("e"), "e")
    if n.bit_length() < MIN_AK_BITS or e < 3 or e % 2 == 0:
        raise ValueError(f"the {AK_KID} key is not an RSA key of at least {MIN_AK_BITS} bits")
    return rsa.RSAPublicNumbers(e, n).public_key()


def jwk_of(key: rsa.RSAPublicKey, kid: str, ops: list[str]) -> dict[str, Any]:
    """An RSA public key as the HCL writes it in the runtime data (members in its order)."""
    numbers = key.public_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"kid": kid, "key_ops": ops, "kty": "RSA", "e": b64(numbers.e), "n": b64(numbers.n)}


def names_simulated(raw: bytes) -> bool:
    """Whether the runtime data says SIMULATED (the simulator's ``vm-configuration.vmUniqueId``)."""
    try:
        config = decode_runtime_data(raw).get("vm-configuration")
    except ValueError:
        return False
    return isinstance(config, dict) and str(config.get("vmUniqueId", "")).startswith("SIMULATED")


def user_data(raw: bytes) -> str | None:
    """The ``user-data`` string (hex of what the guest wrote to NV index 0x01400002), or None."""
    try:
        value = decode_runtime_data(raw).get("user-data")
    except ValueError:
        return None
    return value if isinstance(value, str) else None
