"""Attestation tokens: JWTs (Ed25519, via joserfc) saying that a worker key passed appraisal.

A token binds the worker's ephemeral HPKE public key (``cnf``), names the issuing broker (``iss``) and the
audience (``aud``), expires within minutes (``exp``), is unique (``jti``), and carries the digests of the
policy and of the evidence it was issued for. Only ``Ed25519`` (RFC 9864) is accepted: ``none`` and every
other algorithm are refused. A token is a statement for others (the node registry, a service) to rely on;
**a token alone never releases a key** -- the broker always demands fresh evidence.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from cchet.errors import TokenError

__all__ = ["ALGORITHMS", "TOKEN_TTL_S", "TokenClaims", "TokenError", "cnf_of", "issue_token", "verify_token"]

ALGORITHMS = ("Ed25519",)
TOKEN_TTL_S = 300


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cnf_of(worker_public_key: bytes) -> dict[str, str]:
    """The confirmation claim for an encoded HPKE public key: its SHA-256, base64url."""
    return {"hpke_pk_s256": _b64(hashlib.sha256(worker_public_key).digest())}


@dataclass(frozen=True)
class TokenClaims:
    issuer: str
    audience: str
    subject: str
    expires: int
    token_id: str
    cnf: dict[str, str]
    policy_digest: str
    evidence_digest: str
    key_ids: tuple[str, ...]
    simulated: bool


def issue_token(
    key: Ed25519PrivateKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    worker_public_key: bytes,
    policy_digest: str,
    evidence_digest: str,
    key_ids: Iterable[bytes] = (),
    simulated: bool = False,
    ttl_s: int = TOKEN_TTL_S,
    clock: Callable[[], float] = time.time,
) -> str:
    now = int(clock())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": _b64(os.urandom(16)),
        "cnf": cnf_of(worker_public_key),
        "policy_digest": policy_digest,
        "evidence_digest": evidence_digest,
        "key_ids": sorted(k.hex() for k in key_ids),
        "simulated": simulated,
    }
    return jwt.encode({"alg": "Ed25519", "typ": "JWT"}, claims, OKPKey.import_key(key), algorithms=list(ALGORITHMS))


def verify_token(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    issuer: str,
    audience: str,
    worker_public_key: bytes | None = None,
    clock: Callable[[], float] = time.time,
    leeway_s: int = 5,
) -> TokenClaims:
    """Check signature, algorithm, issuer, audience, time and (when given) the holder's key.

    Raises :class:`TokenError` naming the first failed check.
    """
    try:
        header = jwt.decode(token, OKPKey.import_key(public_key), algorithms=list(ALGORITHMS))
    except JoseError as e:
        raise TokenError(f"token signature or algorithm rejected ({e.__class__.__name__}: {e})") from None
    except ValueError as e:
        raise TokenError(f"token is malformed ({e})") from None
    if header.header.get("alg") not in ALGORITHMS:
        raise TokenError(f"token algorithm {header.header.get('alg')!r} is not allowed")
    c = header.claims
    now = int(clock())
    problems = []
    if c.get("iss") != issuer:
        problems.append(f"issuer {c.get('iss')!r} is not {issuer!r}")
    if c.get("aud") != audience:
        problems.append(f"audience {c.get('aud')!r} is not {audience!r}")
    exp = c.get("exp")
    if not isinstance(exp, int) or exp + leeway_s < now:
        problems.append("token expired")
    nbf = c.get("nbf", 0)
    if isinstance(nbf, int) and nbf - leeway_s > now:
        problems.append("token not yet valid")
    if worker_public_key is not None and c.get("cnf") != cnf_of(worker_public_key):
        problems.append("token is bound to another worker key (cnf)")
    if problems:
        raise TokenError("; ".join(problems))
    return TokenClaims(
        issuer=c["iss"],
        audience=c["aud"],
        subject=c.get("sub", ""),
        expires=exp,  # type: ignore[arg-type]
        token_id=c.get("jti", ""),
        cnf=c.get("cnf", {}),
        policy_digest=c.get("policy_digest", ""),
        evidence_digest=c.get("evidence_digest", ""),
        key_ids=tuple(c.get("key_ids", ())),
        simulated=bool(c.get("simulated", False)),
    )
