"""The key-release protocol's messages: canonical forms, signatures, and strict parsing.

Wire form is JSON; binary values are base64 (standard alphabet). Parsing is strict: a malformed message
raises :class:`~cchet.ProtocolError` (a :class:`~cchet.BrokerError`, and a ``ValueError``) naming the field,
never anything else.

Limits: every field of a :class:`KeyRequest` is self-declared and unauthenticated when it arrives, so each is
bounded (in UTF-8 bytes for text): ``node_id`` by :data:`MAX_NODE_ID`, ``function`` by :data:`MAX_FUNCTION`,
each data id by :data:`MAX_DATA_ID`, ``cchet_version`` by :data:`MAX_CCHET_VERSION`, the number of key ids by
:data:`MAX_KEY_IDS` (the most a call ticket can name), the number of data ids by :data:`MAX_DATA_IDS` and the
call ticket by :data:`MAX_TICKET`. A larger one is a :class:`~cchet.ProtocolError` naming the field and the
limit. What the broker writes back of such a field (in reasons and audit records) goes through :func:`echo`.

Four messages (after Trustee's KBS): the worker's :class:`KeyRequest`; the broker's signed challenge (a
nonce tied to the request digest); the worker's attestation (the request again, the nonce, its HPKE suite
and public key, composite evidence); the broker's signed response (an HPKE-sealed key bundle and a token,
or every reason for refusal).

Every broker message is a :class:`SignedMessage`: ``{"body": ..., "broker_key": SPKI DER, "signature"}``
with an Ed25519 signature over ``"cchet/v1/broker/" || role || 0x00 || canonical JSON(body)``. A client
accepts it only if SHA-256(broker_key) is the broker id it pins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cchet.attest.tees import ALL
from cchet.broker.tickets import MAX_KEY_IDS, MAX_TICKET
from cchet.errors import ProtocolError

__all__ = [
    "ECHO_MAX",
    "MAX_CCHET_VERSION",
    "MAX_DATA_ID",
    "MAX_DATA_IDS",
    "MAX_FUNCTION",
    "MAX_KEY_IDS",
    "MAX_NODE_ID",
    "MAX_TICKET",
    "PROTOCOL_VERSION",
    "KeyRequest",
    "ProtocolError",
    "b64d",
    "b64e",
    "canonical_json",
    "echo",
    "open_signed",
    "sign_body",
]

PROTOCOL_VERSION = 1
_SIGN_LABEL = b"cchet/v1/broker/"
TEE_KINDS = ALL
MAX_NODE_ID = 256
"""Bytes (UTF-8) of a request's ``node_id``; a Ray node id is 56 hex digits."""
MAX_FUNCTION = 256
"""Bytes (UTF-8) of a request's ``function``; a function identity is 64 hex digits."""
MAX_DATA_ID = 256
"""Bytes (UTF-8) of each data id of a request."""
MAX_DATA_IDS = 256
"""Data ids per request."""
MAX_CCHET_VERSION = 64
"""Bytes (UTF-8) of a request's ``cchet_version``."""
ECHO_MAX = 64
"""Characters of a self-declared string that :func:`echo` writes as is; longer ones become a digest."""


def echo(value: str) -> str:
    """How a self-declared string (node id, function, data id) appears in refusal reasons and audit records.

    Quoted as is (``repr``) when it is at most :data:`ECHO_MAX` printable ASCII characters, else as
    ``sha256:<hex>`` of its UTF-8, so that a request can neither inflate the audit log nor write control or
    look-alike characters into it. The digest still identifies the value for whoever holds the request.
    """
    if len(value) <= ECHO_MAX and value.isascii() and value.isprintable():
        return repr(value)
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64d(value: object, name: str, *, size: int | None = None, max_size: int = 1 << 24) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{name} is not valid base64") from None
    if size is not None and len(data) != size:
        raise ProtocolError(f"{name} must decode to {size} bytes, got {len(data)}")
    if len(data) > max_size:
        raise ProtocolError(f"{name} is larger than {max_size} bytes")
    return data


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _optional_text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name, "")
    if not isinstance(value, str):
        raise ProtocolError(f"field {name!r} must be a string")
    return value


def _field(doc: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in doc:
        raise ProtocolError(f"missing field {name!r}")
    value = doc[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value


def as_object(doc: object, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return doc


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _bounded(name: str, size: int, limit: int, limit_name: str, unit: str) -> None:
    if size > limit:
        raise ProtocolError(f"{name} is too large: {size} {unit}, over the limit of {limit} ({limit_name})")


def _bounded_text(name: str, value: str, limit: int, limit_name: str) -> None:
    """``ProtocolError`` unless ``value`` is text that encodes to at most ``limit`` bytes of UTF-8."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ProtocolError(f"{name} is not valid Unicode text (it holds a lone surrogate)") from None
    _bounded(name, size, limit, limit_name, "bytes")


@dataclass(frozen=True)
class KeyRequest:
    """What a worker asks for: keys (by id) for a function and the data ids it will touch.

    ``function`` is the function identity (the hex digest of the function's sealed code, or a pseudo-function
    such as ``cchet.node-join``); ``node_id`` the Ray node; ``tee_kind`` the CPU TEE it will prove; ``ticket``
    the data owner's call ticket (:mod:`cchet.broker.tickets`), empty when the request needs none;
    ``gpu_identity`` the SHA-256 (hex) of the attestation certificate of the GPU the call runs on, for a
    ``gpu='cc'`` call (the broker releases nothing unless a report of that GPU passed). The digest that the
    evidence binds is :meth:`digest`.
    """

    node_id: str
    tee_kind: str
    function: str
    key_ids: tuple[bytes, ...]
    data_ids: tuple[str, ...] = ()
    cchet_version: str = ""
    version: int = PROTOCOL_VERSION
    gpus: int = 0
    ticket: bytes = b""
    gpu_identity: str = ""

    def __post_init__(self) -> None:
        if self.tee_kind not in TEE_KINDS:
            raise ProtocolError(f"tee_kind must be one of {', '.join(TEE_KINDS)}, got {echo(self.tee_kind)}")
        if not self.key_ids:
            raise ProtocolError("a request must name at least one key id")
        _bounded("key_ids", len(self.key_ids), MAX_KEY_IDS, "MAX_KEY_IDS", "entries")
        _bounded("data_ids", len(self.data_ids), MAX_DATA_IDS, "MAX_DATA_IDS", "entries")
        _bounded_text("node_id", self.node_id, MAX_NODE_ID, "MAX_NODE_ID")
        _bounded_text("function", self.function, MAX_FUNCTION, "MAX_FUNCTION")
        _bounded_text("cchet_version", self.cchet_version, MAX_CCHET_VERSION, "MAX_CCHET_VERSION")
        for data_id in self.data_ids:
            _bounded_text("a data id", data_id, MAX_DATA_ID, "MAX_DATA_ID")
        if any(len(k) != 16 for k in self.key_ids):
            raise ProtocolError("key ids are 16 bytes")
        if len(set(self.key_ids)) != len(self.key_ids):
            raise ProtocolError("key ids must be distinct")
        if not 0 <= self.gpus <= 255:
            raise ProtocolError("gpus must be 0..255")
        _bounded("ticket", len(self.ticket), MAX_TICKET, "MAX_TICKET", "bytes")
        if self.gpu_identity and not _HEX64.fullmatch(self.gpu_identity):
            raise ProtocolError("gpu_identity must be 64 lowercase hex digits (a SHA-256) or empty")

    def digest(self, broker_id: bytes) -> bytes:
        """SHA-256 of the canonical, length-prefixed request: version, broker id, node id, TEE kind, cchet
        version, function identity, sorted key ids, sorted data ids, GPU count, call ticket, the identity of
        the GPU the call runs on (DESIGN.md section 4)."""
        parts = [
            b"cchet/v1/request\x00",
            struct.pack(">H", self.version),
            _lp(broker_id),
            _lp(self.node_id.encode()),
            _lp(self.tee_kind.encode()),
            _lp(self.cchet_version.encode()),
            _lp(self.function.encode()),
            struct.pack(">I", len(self.key_ids)),
            *(_lp(k) for k in sorted(self.key_ids)),
            struct.pack(">I", len(self.data_ids)),
            *(_lp(d.encode()) for d in sorted(self.data_ids)),
            struct.pack(">B", self.gpus),
            _lp(self.ticket),
            _lp(self.gpu_identity.encode()),
        ]
        return hashlib.sha256(b"".join(parts)).digest()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "node_id": self.node_id,
            "tee_kind": self.tee_kind,
            "function": self.function,
            "key_ids": [k.hex() for k in self.key_ids],
            "data_ids": list(self.data_ids),
            "cchet_version": self.cchet_version,
            "gpus": self.gpus,
            "ticket": b64e(self.ticket),
            "gpu_identity": self.gpu_identity,
        }

    @classmethod
    def from_json(cls, doc: object) -> KeyRequest:
        d = as_object(doc, "request")
        version = _field(d, "version", int)
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {version} is not supported (this broker speaks {PROTOCOL_VERSION})")
        key_ids = _field(d, "key_ids", list)
        try:
            keys = tuple(bytes.fromhex(k) for k in key_ids)
        except (TypeError, ValueError):
            raise ProtocolError("key_ids must be hex strings") from None
        data_ids = _field(d, "data_ids", list)
        if not all(isinstance(x, str) for x in data_ids):
            raise ProtocolError("data_ids must be strings")
        return cls(
            node_id=_field(d, "node_id", str),
            tee_kind=_field(d, "tee_kind", str),
            function=_field(d, "function", str),
            key_ids=keys,
            data_ids=tuple(data_ids),
            cchet_version=_field(d, "cchet_version", str),
            version=version,
            gpus=_field(d, "gpus", int),
            ticket=b64d(d.get("ticket", ""), "ticket", max_size=MAX_TICKET),
            gpu_identity=_optional_text(d, "gpu_identity"),
        )


def spki(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _to_sign(role: str, body: dict[str, Any]) -> bytes:
    return _SIGN_LABEL + role.encode() + b"\x00" + canonical_json(body)


def sign_body(key: Ed25519PrivateKey, role: str, body: dict[str, Any]) -> dict[str, Any]:
    """Wrap ``body`` in a signed message for ``role`` ("challenge" or "response")."""
    return {
        "role": role,
        "body": body,
        "broker_key": b64e(spki(key.public_key())),
        "signature": b64e(key.sign(_to_sign(role, body))),
    }


def open_signed(message: object, role: str, expected_broker_id: bytes) -> dict[str, Any]:
    """The body of a signed broker message, after checking the signer is the pinned broker.

    Raises :class:`ProtocolError` for anything malformed, unsigned, of the wrong role, signed by another
    key, or whose signature fails.
    """
    m = as_object(message, "broker message")
    if m.get("role") != role:
        raise ProtocolError(f"expected a signed {role!r} message, got role {m.get('role')!r}")
    body = as_object(m.get("body"), "body")
    key_der = b64d(m.get("broker_key"), "broker_key", max_size=4096)
    signature = b64d(m.get("signature"), "signature", size=64)
    if not hmac.compare_digest(hashlib.sha256(key_der).digest(), expected_broker_id):
        raise ProtocolError("the response is signed by another broker (its key does not hash to the pinned broker id)")
    try:
        public = serialization.load_der_public_key(key_der)
    except ValueError:
        raise ProtocolError("broker_key is not a public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ProtocolError("broker_key is not an Ed25519 key")
    try:
        public.verify(signature, _to_sign(role, body))
    except InvalidSignature:
        raise ProtocolError("the broker's signature does not verify") from None
    return body
