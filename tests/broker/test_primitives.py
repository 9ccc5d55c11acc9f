"""Nonces, HPKE suites, tokens and protocol messages, each attacked on its own."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from cchet.broker.hpke import SUITES, HpkeKeyPair, seal_to, suite_by_ids
from cchet.broker.messages import KeyRequest, ProtocolError, open_signed, sign_body
from cchet.broker.nonces import NonceRegistry
from cchet.broker.tokens import TokenError, issue_token, verify_token


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_nonce_single_use_expiry_and_request_binding() -> None:
    clock = Clock()
    reg = NonceRegistry(clock=clock)
    n = reg.issue(b"A" * 32)
    assert reg.consume(n, b"A" * 32)[0] == []
    assert "already used" in reg.consume(n, b"A" * 32)[0][0]
    n2 = reg.issue(b"A" * 32)
    assert "another request" in " ".join(reg.consume(n2, b"B" * 32)[0])
    assert "already used" in reg.consume(n2, b"A" * 32)[0][0], "a failed attempt consumes the nonce too"
    n3 = reg.issue(b"A" * 32)
    clock.t += 61
    assert "expired" in " ".join(reg.consume(n3, b"A" * 32)[0])
    with pytest.raises(ValueError):
        NonceRegistry(ttl_s=120)


def test_nonces_are_distinct_and_purged() -> None:
    clock = Clock()
    reg = NonceRegistry(clock=clock)
    nonces = {reg.issue(b"x" * 32) for _ in range(1000)}
    assert len(nonces) == 1000 and len(reg) == 1000
    clock.t += 61
    reg.issue(b"x" * 32)
    assert len(reg) == 1


@pytest.mark.parametrize("name", sorted(SUITES))
def test_hpke_round_trip_binds_info(name: str) -> None:
    suite = SUITES[name]
    pair = HpkeKeyPair(suite)
    ct = seal_to(suite, pair.public_bytes, b"bundle", b"info-1")
    assert pair.open(ct, b"info-1") == b"bundle"
    with pytest.raises(InvalidTag):
        pair.open(ct, b"info-2")
    with pytest.raises(InvalidTag):
        HpkeKeyPair(suite).open(ct, b"info-1")
    with pytest.raises(ValueError, match="bytes"):
        suite.public_key_from_bytes(pair.public_bytes[:-1])
    assert suite_by_ids(*suite.ids) is suite


def test_unknown_suite_names_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="MLKEM768-X25519"):
        suite_by_ids(0x10, 1, 2)


def test_hybrid_public_key_encoding_is_explicit() -> None:
    pair = HpkeKeyPair(SUITES["MLKEM768-X25519"])
    assert len(pair.public_bytes) == 1184 + 32
    assert SUITES["MLKEM768-X25519"].kem_id == 0x647A and SUITES["X25519"].kem_id == 0x0020


KEY = Ed25519PrivateKey.generate()


def _token(**kw: object) -> str:
    args: dict[str, object] = dict(
        issuer="cchet-broker",
        audience="cchet-worker",
        subject="w",
        worker_public_key=b"pk",
        policy_digest="p",
        evidence_digest="e",
    )
    args.update(kw)
    return issue_token(KEY, **args)  # type: ignore[arg-type]


def _verify(token: str, **kw: object) -> object:
    args: dict[str, object] = dict(issuer="cchet-broker", audience="cchet-worker", worker_public_key=b"pk")
    args.update(kw)
    return verify_token(token, KEY.public_key(), **args)  # type: ignore[arg-type]


def _b64(doc: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def test_token_round_trip() -> None:
    claims = _verify(_token(key_ids=[bytes(16)]))
    assert claims.key_ids == (bytes(16).hex(),)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: _token().rsplit(".", 1)[0] + "." + _b64({"x": 1}), "signature"),
        (
            lambda: issue_token(
                Ed25519PrivateKey.generate(),
                issuer="cchet-broker",
                audience="cchet-worker",
                subject="w",
                worker_public_key=b"pk",
                policy_digest="p",
                evidence_digest="e",
            ),
            "signature",
        ),
        (lambda: _b64({"alg": "none", "typ": "JWT"}) + "." + _token().split(".")[1] + ".", "algorithm|none"),
        (
            lambda: _b64({"alg": "HS256", "typ": "JWT"}) + "." + _token().split(".")[1] + ".c2ln",
            "algorithm|HS256",
        ),
        (lambda: _token(audience="someone-else"), "audience"),
        (lambda: _token(issuer="another-broker"), "issuer"),
        (lambda: _token(clock=lambda: 0.0), "expired"),
        (lambda: _token(worker_public_key=b"other"), "cnf"),
        (lambda: "not.a.token", "malformed|rejected"),
    ],
    ids=[
        "tampered",
        "forged",
        "alg-none",
        "alg-hs256",
        "audience",
        "issuer",
        "expired",
        "other-key",
        "garbage",
    ],
)
def test_bad_tokens_are_refused(make: object, match: str) -> None:
    with pytest.raises(TokenError, match=match):
        _verify(make())  # type: ignore[operator]


def _request() -> KeyRequest:
    return KeyRequest(node_id="n", tee_kind="tdx", function="f", key_ids=(bytes(16),), data_ids=("d",))


def test_request_digest_covers_every_field() -> None:
    base = _request()
    d = base.digest(bytes(32))
    variants = [
        KeyRequest("m", "tdx", "f", (bytes(16),), ("d",)),
        KeyRequest("n", "snp", "f", (bytes(16),), ("d",)),
        KeyRequest("n", "tdx", "g", (bytes(16),), ("d",)),
        KeyRequest("n", "tdx", "f", (b"\x01" * 16,), ("d",)),
        KeyRequest("n", "tdx", "f", (bytes(16),), ("e",)),
        KeyRequest("n", "tdx", "f", (bytes(16),), ("d",), cchet_version="9"),
        KeyRequest("n", "tdx", "f", (bytes(16),), ("d",), gpus=1),
    ]
    assert all(v.digest(bytes(32)) != d for v in variants)
    assert base.digest(b"\x01" * 32) != d
    assert KeyRequest.from_json(base.to_json()) == base


def test_signed_messages_reject_foreign_and_forged_signers() -> None:
    import hashlib

    from cchet.broker.messages import spki

    key = Ed25519PrivateKey.generate()
    broker_id = hashlib.sha256(spki(key.public_key())).digest()
    msg = sign_body(key, "response", {"verdict": "denied", "reasons": ["x"]})
    assert open_signed(msg, "response", broker_id)["verdict"] == "denied"
    squatter = sign_body(Ed25519PrivateKey.generate(), "response", {"verdict": "released"})
    with pytest.raises(ProtocolError, match="another broker"):
        open_signed(squatter, "response", broker_id)
    forged = dict(msg, body={"verdict": "released"})
    with pytest.raises(ProtocolError, match="signature does not verify"):
        open_signed(forged, "response", broker_id)
    with pytest.raises(ProtocolError, match="role"):
        open_signed(msg, "challenge", broker_id)
    with pytest.raises(ProtocolError):
        open_signed(dict(msg, signature="AAAA"), "response", broker_id)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.binary(max_size=20).map(lambda b: b.hex()),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    doc=json_values, mutate=st.sampled_from(["node_id", "tee_kind", "key_ids", "version", "gpus", "data_ids"])
)
def test_malformed_requests_get_protocol_errors(doc: object, mutate: str) -> None:
    with contextlib.suppress(ProtocolError):
        KeyRequest.from_json(doc)
    good = _request().to_json()
    good[mutate] = doc
    with contextlib.suppress(ProtocolError):
        KeyRequest.from_json(good)


@settings(max_examples=200, deadline=None)
@given(doc=json_values)
def test_malformed_signed_messages_get_protocol_errors(doc: object) -> None:
    with pytest.raises(ProtocolError):
        open_signed(doc, "response", bytes(32))
