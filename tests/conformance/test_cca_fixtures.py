"""Trustee's Arm CCA fixtures (MANIFEST.md, "Arm CCA (cca/)") get upstream's verdicts, offline.

- ``cca-example-token.cbor`` verifies with the CPAK of ``cpak-pub.json`` (what ``evcli cca check -k`` checks)
  and with the ``tastore.json`` endorsement; the realm token verifies with its RAK; the platform challenge is
  SHA-256 of the RAK; the local verifier's inferred verdict passes only with the fixed realm challenge as the
  expected report data, and any other fails naming the challenge. Without an endorsement the platform is
  "unrecognized" and nothing verifies.
- ``rvstore.json`` (as a ``cca`` policy table) accepts the token: platform config and the 13 components in
  order, the RIM of trustee's README and four zero REMs.
- ``cca-claims.json`` reads as trustee's claims document (upstream only asserts that it deserialises); the
  claims cchet writes for the token carry ``report_data`` = the challenge and ``init_data`` = 64 zero bytes.
- No byte of the token can change and still verify.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cchet.attest import Policy
from cchet.attest.appraise import evaluate, verify_evidence
from cchet.attest.evidence import CompositeEvidence, CpuEvidence
from cchet.attest.formats import parse
from cchet.attest.tees.cca.cose import jwk_public_key, public_key_from_rak, spki_der
from cchet.attest.tees.cca.endorsement import anchor_platform, anchors_from_collateral, anchors_from_tastore
from cchet.attest.tees.cca.rvstore import table_from_rvstore
from cchet.attest.tees.cca.token import CcaToken, parse_token
from cchet.attest.tees.cca.trustee_claims import read_trustee_claims, trustee_claims
from cchet.attest.tees.cca.verify import verify_cca_token
from cchet.attest.verify.options import VerifyOptions, default_options, pinned_anchors
from cchet.attest.verify.verdict import judge
from cchet.cli import main
from cchet.errors import EvidenceFormatError
from tests.conftest import fixture_path

CHALLENGE = bytes.fromhex(
    "57e979ae2618de0c1ab73144c440d741cf9236dc9d52ed190053382a4d190252"
    "f9f0370403c35dcb155fb4362d73c66d5b0494bf939315d3dc52b8cdc8b85a96"
)
README_RIM = "rof79/EF5xp4J8tvCJaInHPSvq9IMNT5ywXj6Ww/x7T6oEyvNqJr0JTPnHtzhhfkwYmq7hhN7dpdegPDnb2sfA=="


def path(name: str) -> Path:
    return fixture_path(f"trustee/cca/{name}")


@pytest.fixture(scope="module")
def token() -> CcaToken:
    parsed = parse(path("cca-example-token.cbor").read_bytes())
    assert isinstance(parsed, CcaToken)
    return parsed


def endorsed(source: str = "tastore.json") -> VerifyOptions:
    anchors = anchors_from_collateral(path(source).read_bytes())
    assert anchors
    return default_options(anchors=(*pinned_anchors(), *anchors))


def checks(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


def test_the_token_round_trips_and_reads_as_the_manifest_says(token: CcaToken) -> None:
    raw = path("cca-example-token.cbor").read_bytes()
    assert len(raw) == 2234 and token.to_bytes() == raw and parse_token(raw) == token
    p, r = token.platform_claims, token.realm_claims
    assert (
        p.profile == "http://arm.com/CCA-SSD/1.0.0" and p.lifecycle == 0x3003 and p.config == bytes.fromhex("cfcfcfcf")
    )
    assert p.instance_id.hex() == "0107060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert len(p.sw_components) == 13 and p.hash_algo == "sha-256"
    assert r.challenge == CHALLENGE and r.hash_algo == "sha-512" and r.public_key_hash_algo == "sha-256"
    assert r.profile is None and len(r.public_key) == 97 and r.extensible_measurements == (bytes(64),) * 4
    assert r.personalization_value == bytes(64) and base64.b64encode(r.initial_measurement).decode() == README_RIM
    assert token.platform.algorithm == token.realm.algorithm == -35 and not token.simulated


@pytest.mark.parametrize("source", ["tastore.json", "cpak-pub.json"])
def test_verifies_with_the_cpak_and_the_fixed_challenge(token: CcaToken, source: str) -> None:
    device, failures = verify_cca_token(token, endorsed(source), expected_report_data=CHALLENGE)
    assert failures == [] and device.kind == "cca" and not device.simulated and device.anchor


def test_any_other_nonce_fails_naming_the_challenge(token: CcaToken) -> None:
    for nonce in (bytes(64), CHALLENGE[:32], CHALLENGE[:-1] + b"\x00"):
        _, failures = verify_cca_token(token, endorsed(), expected_report_data=nonce)
        assert checks(failures) == {"cca.nonce"} and CHALLENGE.hex() in failures[0]


def test_an_unendorsed_platform_is_not_verified(token: CcaToken) -> None:
    _, failures = verify_cca_token(token, default_options(), expected_report_data=CHALLENGE)
    assert checks(failures) == {"cca.chain"}
    assert "0107060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918" in failures[0]


def test_the_endorsements_agree(token: CcaToken) -> None:
    (store,) = anchors_from_tastore(path("tastore.json").read_bytes())
    (lone,) = anchors_from_collateral(path("cpak-pub.json").read_bytes())
    assert (
        store.certificate_der
        == lone.certificate_der
        == spki_der(jwk_public_key(json.loads(path("cpak-pub.json").read_text())))
    )
    assert anchor_platform(store) == (token.platform_claims.implementation_id, token.platform_claims.instance_id)
    assert anchor_platform(lone) == (None, None) and not store.simulated and "SIMULATED" not in store.name


def test_the_rak_binding_holds(token: CcaToken) -> None:
    import hashlib

    assert hashlib.sha256(token.realm_claims.public_key).digest() == token.platform_claims.challenge
    public_key_from_rak(token.realm_claims.public_key, cose_key=False)  # a P-384 point


def test_the_rvstore_table_accepts_the_token(token: CcaToken) -> None:
    table = table_from_rvstore(path("rvstore.json").read_bytes())
    assert base64.b64encode(bytes.fromhex(table["rim"][0])).decode() == README_RIM
    assert table["platform_config"] == ["cfcfcfcf"] and len(table["sw_components"][0]) == 13
    policy = Policy(name="trustee-rvstore", tee_kinds=("cca",), require_binding=False, cca=table)
    verified = verify_evidence(
        CompositeEvidence(CpuEvidence(token)), endorsed().replace(expected_report_data=CHALLENGE)
    )
    result = evaluate(verified, policy, nonce=None, binding=None)
    assert result.accepted, result.reasons
    assert policy.pins_cpu("cca")
    # another component list is a violation naming the first difference
    table["sw_components"][0][6]["measurement"] = "00" * 32
    result = evaluate(verified, Policy(tee_kinds=("cca",), require_binding=False, cca=table), nonce=None, binding=None)
    assert [v.rule for v in result.violations] == ["cca.sw_components"] and "SCP_BL2" in result.violations[0].actual


def test_the_claims_are_trustees(token: CcaToken) -> None:
    upstream = read_trustee_claims(path("cca-claims.json").read_bytes())  # upstream: deserialises, is_ok()
    assert upstream.hash_algo == "sha-256" and len(upstream.extensible_measurements) == 4
    ours = read_trustee_claims(json.dumps(trustee_claims(token)))
    assert ours.report_data == CHALLENGE.hex() and ours.init_data == "00" * 64
    assert ours.initial_measurement == token.realm_claims.initial_measurement
    assert set(trustee_claims(token)) == set(json.loads(path("cca-claims.json").read_text()))


def test_no_changed_byte_verifies(token: CcaToken) -> None:
    options = endorsed()
    raw = token.to_bytes()
    for i in range(len(raw)):
        changed = raw[:i] + bytes([raw[i] ^ 0x80]) + raw[i + 1 :]
        try:
            tampered = parse_token(changed)
        except EvidenceFormatError:
            continue
        assert verify_cca_token(tampered, options, expected_report_data=CHALLENGE)[1], i


def test_judge_is_the_cli_pipeline(token: CcaToken) -> None:
    verdict = judge(token, endorsed(), nonce=CHALLENGE, verify_only=True)
    assert verdict.ok and verdict.claims["cpu"]["report_data"] == CHALLENGE.hex()
    policy = Policy(tee_kinds=("cca",), cca=table_from_rvstore(path("rvstore.json").read_bytes()))
    assert judge(token, endorsed(), nonce=CHALLENGE, policy=policy).ok
    wrong = judge(token, endorsed(), nonce=bytes(64), verify_only=True)
    assert not wrong.ok and CHALLENGE.hex() in wrong.reason()


@pytest.fixture
def _empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCHET_COLLATERAL_DIR", str(tmp_path / "cache"))


@pytest.mark.usefixtures("_empty_cache")
def test_cchet_verify_without_an_endorsement_names_the_platform(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["verify", str(path("cca-example-token.cbor")), "--kind", "cca", "--nonce", CHALLENGE.hex(), "--verify-only"]
    )
    out = capsys.readouterr().out
    assert code == 1 and "no Arm CCA endorsement" in out.splitlines()[0]


@pytest.mark.usefixtures("_empty_cache")
def test_a_cpak_given_as_certificates_is_not_trusted(capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever comes with the evidence cannot endorse the platform: a CPAK there would vouch for itself."""
    token = str(path("cca-example-token.cbor"))
    code = main(["verify", token, "--kind", "cca", "--certs", str(path("cpak-pub.json")), "--verify-only"])
    out = capsys.readouterr().out
    assert code == 1 and "never taken as a CPAK" in out.splitlines()[0]


@pytest.mark.usefixtures("_empty_cache")
def test_cchet_verify_with_the_endorsement(capsys: pytest.CaptureFixture[str]) -> None:
    token = str(path("cca-example-token.cbor"))
    for store in ("tastore.json", "cpak-pub.json"):
        args = [token, "--kind", "cca", "--collateral", str(path(store)), "--nonce", CHALLENGE.hex(), "--verify-only"]
        assert main(["verify", *args]) == 0, capsys.readouterr().out
        capsys.readouterr()
    code = main(["verify", token, "--collateral", str(path("tastore.json")), "--nonce", "00" * 64, "--verify-only"])
    out = capsys.readouterr().out
    assert code == 1 and CHALLENGE.hex() in out.splitlines()[0]
    code = main(["verify", token, "--collateral", str(path("tastore.json")), "--nonce", CHALLENGE.hex()])
    assert code == 0, capsys.readouterr().out  # the default policy, with cca among its kinds
