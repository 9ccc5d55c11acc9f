"""The CCA token format: exact round trips, strict encodings, fuzzed parsing that raises only
EvidenceFormatError, a changed byte that never verifies, and pycose agreeing with cchet's COSE_Sign1 checks."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest.formats import detect_kind, parse
from cchet.attest.simulate import SimulatedAuthority, simulation_options
from cchet.attest.tees.cca.cose import public_key_from_rak
from cchet.attest.tees.cca.simulate import simulate_cca_token, simulated_platform
from cchet.attest.tees.cca.token import (
    COLLECTION_TAG,
    PLATFORM_TOKEN,
    REALM_PROFILE,
    REALM_TOKEN,
    CcaToken,
    parse_token,
)
from cchet.attest.tees.cca.verify import verify_cca_token
from cchet.errors import EvidenceFormatError
from tests.attest.conftest import NOW

RD = bytes(range(64))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> CcaToken:
    return simulate_cca_token(SimulatedAuthority.open(tmp_path_factory.mktemp("cca") / "a"), report_data=RD)


@pytest.fixture(scope="module")
def authority_and_token(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatedAuthority, CcaToken]:
    authority = SimulatedAuthority.open(tmp_path_factory.mktemp("cca") / "b")
    return authority, simulate_cca_token(authority, report_data=RD, realm_profile=None)


def _collection(platform: bytes, realm: bytes, *, realm_first: bool = False) -> bytes:
    parts = [(PLATFORM_TOKEN, platform), (REALM_TOKEN, realm)]
    return cbor2.dumps(cbor2.CBORTag(COLLECTION_TAG, dict(reversed(parts) if realm_first else parts)))


def _sign1(message: Any) -> list[Any]:
    return [message.protected, {}, message.payload, message.signature]


def test_round_trip_and_detection(token: CcaToken) -> None:
    raw = token.to_bytes()
    assert parse_token(raw) == token and parse_token(raw).to_bytes() == raw
    assert detect_kind(raw) == "cca" and parse(raw) == token


def test_collection_order_is_kept(token: CcaToken) -> None:
    raw = _collection(token.platform.to_bytes(), token.realm.to_bytes(), realm_first=True)
    parsed = parse_token(raw)
    assert not parsed.platform_first and parsed.to_bytes() == raw and parsed.realm_claims == token.realm_claims


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: cbor2.dumps(cbor2.CBORTag(400, {})), "token"),
        (
            lambda t: cbor2.dumps(cbor2.CBORTag(COLLECTION_TAG, {PLATFORM_TOKEN: t.platform.to_bytes()})),
            "token.collection",
        ),
        (lambda t: _collection(t.platform.to_bytes(), b"\x00"), "realm"),
        (lambda t: _collection(cbor2.dumps(cbor2.CBORTag(17, _sign1(t.platform))), t.realm.to_bytes()), "platform"),
        (lambda t: _collection(cbor2.dumps(cbor2.CBORTag(18, _sign1(t.platform)[:3])), t.realm.to_bytes()), "platform"),
        (
            lambda t: _collection(
                t.platform.to_bytes(),
                cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({4: b"k"}), {}, t.realm.payload, b""])),
            ),
            "realm.protected",
        ),
        (
            lambda t: _collection(
                t.platform.to_bytes(), cbor2.dumps(cbor2.CBORTag(18, [t.realm.protected, {}, cbor2.dumps([1]), b""]))
            ),
            "realm.payload",
        ),
        (
            lambda t: _collection(
                t.platform.to_bytes(),
                cbor2.dumps(cbor2.CBORTag(18, [t.realm.protected, {}, cbor2.dumps({10: RD}), b""])),
            ),
            "realm.claims[44236]",  # the first missing claim
        ),
    ],
)
def test_structure_errors_name_the_field(token: CcaToken, mutate: Any, field: str) -> None:
    with pytest.raises(EvidenceFormatError) as e:
        parse_token(mutate(token))
    assert e.value.field is not None and e.value.field.startswith(field), e.value


def _resign_realm(token: CcaToken, claims: dict[int, Any], authority: SimulatedAuthority) -> bytes:
    from cchet.attest.tees.cca.cose import sign_sign1

    realm = sign_sign1(token.realm.protected, cbor2.dumps(claims), simulated_platform(authority).rak, -35)
    return _collection(token.platform.to_bytes(), realm.to_bytes())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({10: bytes(32)}, "realm.claims[10]"),
        ({44235: bytes(63)}, "realm.claims[44235]"),
        ({44238: bytes(32)}, "realm.claims[44238]"),  # sha-512 realm: 64-byte measurements
        ({44239: [bytes(64)] * 3}, "realm.claims[44239]"),
        ({44236: "sha-1"}, "realm.claims[44236]"),
        ({44237: b"\x04" + bytes(95)}, "realm.claims[44237]"),
        ({44237: b"\x02" + bytes(96)}, "realm.claims[44237]"),
        ({44240: 5}, "realm.claims[44240]"),
        ({10: True}, "realm.claims[10]"),
    ],
)
def test_claim_sizes_and_types_are_checked(
    authority_and_token: tuple[SimulatedAuthority, CcaToken], change: dict[int, Any], field: str
) -> None:
    authority, token = authority_and_token
    claims = dict(cbor2.loads(token.realm.payload))
    claims.update(change)
    with pytest.raises(EvidenceFormatError) as e:
        parse_token(_resign_realm(token, claims, authority))
    assert e.value.field == field, e.value


def test_a_repeated_claim_is_refused(authority_and_token: tuple[SimulatedAuthority, CcaToken]) -> None:
    authority, token = authority_and_token
    payload = bytearray(token.realm.payload)
    # a map of n claims, with the challenge (key 10) given again at the end: n + 1 entries, key 10 twice
    n = len(cbor2.loads(bytes(payload)))
    assert payload[0] == 0xA0 + n
    payload[0] += 1
    payload += cbor2.dumps(10) + cbor2.dumps(bytes(64))
    from cchet.attest.tees.cca.cose import sign_sign1

    realm = sign_sign1(token.realm.protected, bytes(payload), simulated_platform(authority).rak, -35)
    with pytest.raises(EvidenceFormatError, match="preferred CBOR") as e:
        parse_token(_collection(token.platform.to_bytes(), realm.to_bytes()))
    assert e.value.field == "realm.payload"


def test_non_preferred_encodings_are_refused(token: CcaToken) -> None:
    raw = token.to_bytes()
    # the platform bstr's length written with a 4-byte head instead of 2
    head = raw.index(token.platform.to_bytes()) - 3
    assert raw[head] == 0x59
    longer = raw[:head] + b"\x5a" + (len(token.platform.to_bytes())).to_bytes(4, "big") + raw[head + 3 :]
    with pytest.raises(EvidenceFormatError, match="preferred CBOR") as e:
        parse_token(longer)
    assert e.value.offset is not None
    indefinite = raw[:3] + b"\xbf" + raw[4:] + b"\xff"  # an indefinite-length collection map
    with pytest.raises(EvidenceFormatError):
        parse_token(indefinite)


def test_size_limit(token: CcaToken) -> None:
    with pytest.raises(EvidenceFormatError, match="larger than"):
        parse_token(token.to_bytes() + bytes(70000))


@FAST
@given(st.binary(max_size=600))
def test_fuzzed_bytes_raise_only_evidence_format_error(data: bytes) -> None:
    for blob in (data, b"\xd9\x01\x8f" + data):
        with contextlib.suppress(EvidenceFormatError):
            parse_token(blob)


@FAST
@given(st.data())
def test_fuzzed_tokens_parse_exactly_or_raise_evidence_format_error(token: CcaToken, data: st.DataObject) -> None:
    raw = bytearray(token.to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    blob = bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw)
    try:
        parsed = parse_token(blob)
    except EvidenceFormatError:
        return
    assert parsed.to_bytes() == blob


@FAST
@given(st.data())
def test_a_changed_byte_never_verifies(
    authority_and_token: tuple[SimulatedAuthority, CcaToken], data: st.DataObject
) -> None:
    authority, token = authority_and_token
    options = simulation_options(authority, now=NOW)
    raw = token.to_bytes()
    assert verify_cca_token(token, options, expected_report_data=RD)[1] == []
    i = data.draw(st.integers(0, len(raw) - 1))
    changed = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1 :]
    try:
        tampered = parse_token(changed)
    except EvidenceFormatError:
        return
    assert verify_cca_token(tampered, options, expected_report_data=RD)[1] != []


def test_every_byte_of_the_signed_parts_matters(authority_and_token: tuple[SimulatedAuthority, CcaToken]) -> None:
    authority, token = authority_and_token
    options = simulation_options(authority, now=NOW)
    raw = token.to_bytes()
    verified = 0
    for i in range(len(raw)):
        changed = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        try:
            tampered = parse_token(changed)
        except EvidenceFormatError:
            continue
        assert verify_cca_token(tampered, options, expected_report_data=RD)[1] != [], i
        verified += 1
    assert verified > len(raw) // 2  # most single-bit changes still parse: the signatures are what catch them


@pytest.mark.parametrize("profile", [REALM_PROFILE, None])
def test_pycose_agrees(tmp_path: Any, profile: str | None) -> None:
    """pycose (with the conversions cbor2 6 needs) verifies both signatures of simulated tokens, builds the
    same Sig_structure, and refuses a changed payload."""
    from pycose.keys import EC2Key
    from pycose.keys.curves import P384
    from pycose.messages import Sign1Message

    authority = SimulatedAuthority.open(tmp_path / "a")
    token = simulate_cca_token(authority, report_data=RD, realm_profile=profile)
    cpak = simulated_platform(authority).cpak.public_key().public_numbers()
    rak = public_key_from_rak(token.realm_claims.public_key, cose_key=profile == REALM_PROFILE).public_numbers()
    for message, nums in ((token.platform, cpak), (token.realm, rak)):
        cose = Sign1Message.from_cose_obj([message.protected, {}, message.payload, message.signature], True)
        cose.key = EC2Key(crv=P384, x=nums.x.to_bytes(48, "big"), y=nums.y.to_bytes(48, "big"))
        assert cose.verify_signature() and cose._create_sig_structure() == message.sig_structure()
        bad = replace(message, payload=message.payload[:-1] + bytes([message.payload[-1] ^ 1]))
        cose = Sign1Message.from_cose_obj([bad.protected, {}, bad.payload, bad.signature], True)
        cose.key = EC2Key(crv=P384, x=nums.x.to_bytes(48, "big"), y=nums.y.to_bytes(48, "big"))
        assert not cose.verify_signature()


def test_pycose_cannot_decode_a_tagged_sign1_under_cbor2_6(token: CcaToken) -> None:
    """Why cchet does not hand the messages to pycose's own decoder (docs/tees/cca.md): under cbor2 >= 6 the
    contents of a tag decode immutable, which pycose 1.1 does not accept."""
    from importlib.metadata import version

    from pycose.messages import Sign1Message

    if int(version("cbor2").split(".")[0]) < 6:
        pytest.skip("cbor2 < 6 decodes a tag's contents mutable, which pycose accepts")
    with pytest.raises(TypeError):
        Sign1Message.decode(token.platform.to_bytes())
