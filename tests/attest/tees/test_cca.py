"""Arm CCA (kind ``cca``) through the whole pipeline on SIMULATED tokens: every check failing alone, appraisal
with the ``cca`` table, reference values, the simulator's keys, placement, the broker, the attester and
``cchet info`` / ``cchet attest``."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cchet.attest import Policy, appraise
from cchet.attest.binding import Binding
from cchet.attest.evidence import CompositeEvidence, CpuEvidence, decode_composite
from cchet.attest.formats import parse
from cchet.attest.reference import is_simulated, reference_policy
from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulation_options
from cchet.attest.tees import tee
from cchet.attest.tees.cca import CHECKS
from cchet.attest.tees.cca.simulate import (
    DEFAULT_RIM,
    SUBFOLDER,
    simulate_cca_token,
    simulated_cpak_anchor,
    simulated_platform,
)
from cchet.attest.tees.cca.token import REALM_PROFILE, CcaToken, CoseSign1, SwComponent
from cchet.attest.tees.cca.verify import verify_cca_token
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.options import VerifyOptions
from cchet.errors import EvidenceFormatError, NonceMismatchError, VerificationError
from tests.attest.conftest import NOW

KIND = "cca"
RD = hashlib.sha512(b"cchet test report data").digest()


def options(authority: SimulatedAuthority, **kw: Any) -> VerifyOptions:
    return simulation_options(authority, now=NOW).replace(**kw)


def failed(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


def flip_signature(message: CoseSign1) -> CoseSign1:
    return replace(
        message, signature=message.signature[:10] + bytes([message.signature[10] ^ 1]) + message.signature[11:]
    )


def binding() -> Binding:
    return Binding(
        broker_id=os.urandom(32),
        kem_id=0x0020,
        kdf_id=0x0001,
        aead_id=0x0003,
        public_key=os.urandom(32),
        request_digest=os.urandom(32),
    )


def case(authority: SimulatedAuthority, check: str) -> tuple[CcaToken, bytes | None]:
    """SIMULATED evidence with exactly one thing changed so that ``check`` alone fails (None: nothing)."""
    if check == "cca.chain":  # a platform the anchors do not endorse (validly signed by the simulated CPAK)
        return simulate_cca_token(authority, report_data=RD, instance_id=b"\x01" + bytes(32)), RD
    token = simulate_cca_token(authority, report_data=RD)
    if check == "cca.platform_signature":
        return replace(token, platform=flip_signature(token.platform)), RD
    if check == "cca.realm_signature":
        return replace(token, realm=flip_signature(token.realm)), RD
    if check == "cca.rak_binding":  # the platform signs another challenge than the RAK's hash
        return simulate_cca_token(authority, report_data=RD, platform_challenge=bytes(32)), RD
    if check == "cca.nonce":
        return token, bytes(64)
    assert check == "none"
    return token, RD


@pytest.mark.parametrize("check", [c.id for c in CHECKS])
def test_only_this_check_fails(authority: SimulatedAuthority, check: str) -> None:
    token, expected = case(authority, check)
    _, failures = verify_cca_token(token, options(authority), expected_report_data=expected)
    assert failed(failures) == {check}, failures
    with pytest.raises(next(c for c in CHECKS if c.id == check).error):
        raise_failures(failures)


def test_clean_baseline_has_no_failure(authority: SimulatedAuthority) -> None:
    token, expected = case(authority, "none")
    device, failures = verify_cca_token(token, options(authority), expected_report_data=expected)
    assert failures == []
    assert device.kind == KIND and device.simulated and device.anchor == simulated_cpak_anchor(authority).fingerprint


def test_check_ids_and_classes() -> None:
    assert [c.id for c in CHECKS] == [
        "cca.chain",
        "cca.platform_signature",
        "cca.realm_signature",
        "cca.rak_binding",
        "cca.nonce",
    ]
    assert all(issubclass(c.error, VerificationError) for c in CHECKS)
    assert next(c for c in CHECKS if c.id == "cca.nonce").error is NonceMismatchError


def test_the_nonce_failure_names_the_challenge(authority: SimulatedAuthority) -> None:
    token = simulate_cca_token(authority, report_data=RD)
    _, failures = verify_cca_token(token, options(authority), expected_report_data=RD[:63])
    assert failed(failures) == {"cca.nonce"} and RD.hex() in failures[0] and "63 bytes" in failures[0]


def test_legacy_raw_rak_and_other_hash_algorithms_verify(authority: SimulatedAuthority) -> None:
    for fields in (
        {"realm_profile": None},
        {"realm_hash_algo": "sha-256", "rak_hash_algo": "sha-512"},
        {"rak_hash_algo": "sha-384", "realm_profile": None},
    ):
        token = simulate_cca_token(authority, report_data=RD, **fields)
        assert token.realm_claims.profile == fields.get("realm_profile", REALM_PROFILE)
        assert verify_cca_token(token, options(authority), expected_report_data=RD)[1] == [], fields


def test_an_unknown_rak_hash_algorithm_cannot_bind(authority: SimulatedAuthority) -> None:
    token = simulate_cca_token(authority, report_data=RD, rak_hash_algo="md5", platform_challenge=bytes(32))
    _, failures = verify_cca_token(token, options(authority))
    assert failed(failures) == {"cca.rak_binding"} and "'md5'" in failures[0]


def test_a_real_verifier_refuses_a_simulated_token_without_its_anchor(authority: SimulatedAuthority) -> None:
    from cchet.attest.verify.options import default_options

    token = simulate_cca_token(authority, report_data=RD)
    device, failures = verify_cca_token(token, default_options(now=NOW))
    assert failed(failures) == {"cca.chain"} and not device.simulated and device.anchor == ""
    assert token.platform_claims.instance_id.hex() in failures[0]


def test_another_authoritys_platform_is_not_endorsed(authority: SimulatedAuthority, tmp_path: Path) -> None:
    other = SimulatedAuthority.open(tmp_path / "other")
    token = simulate_cca_token(other, report_data=RD)
    assert failed(verify_cca_token(token, options(authority))[1]) == {"cca.chain"}
    # the right instance-id under the wrong key: not signed by the CPAK endorsed for it
    forged = simulate_cca_token(
        other,
        report_data=RD,
        instance_id=simulated_platform(authority).instance_id,
        implementation_id=simulated_platform(authority).implementation_id,
    )
    assert failed(verify_cca_token(forged, options(authority))[1]) == {"cca.platform_signature"}


# -- simulator ------------------------------------------------------------------------------------------


def test_simulated_keys_live_in_a_subfolder_made_on_first_use(tmp_path: Path) -> None:
    authority = SimulatedAuthority.open(tmp_path / "auth")
    folder = tmp_path / "auth" / SUBFOLDER
    assert not folder.exists()
    first = simulated_platform(authority)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {p.name for p in folder.iterdir()} == {"cpak.key", "rak.key", "platform.json"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    again = simulated_platform(SimulatedAuthority.open(tmp_path / "auth"))
    assert again.instance_id == first.instance_id and again.implementation_id == first.implementation_id
    assert b"SIMULATED" in first.implementation_id and first.instance_id[0] == 1
    anchor = simulated_cpak_anchor(authority)
    assert anchor.simulated and anchor.vendor == "arm-cca" and "SIMULATED" in anchor.name
    assert first.instance_id.hex() in anchor.name


def test_the_simulated_platform_shows_and_pickles_no_key(authority: SimulatedAuthority) -> None:
    import pickle

    from cryptography.hazmat.primitives import serialization

    platform = simulated_platform(authority)
    secret = platform.cpak.private_numbers().private_value.to_bytes(48, "big")
    pem = platform.cpak.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    shown = repr(platform) + str(platform)
    assert secret.hex() not in shown and pem.decode() not in shown and "SIMULATED" in shown
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(platform)


def test_a_damaged_subfolder_is_refused(tmp_path: Path) -> None:
    authority = SimulatedAuthority.open(tmp_path / "auth")
    simulated_platform(authority)
    (tmp_path / "auth" / SUBFOLDER / "platform.json").write_text('{"implementation-id": "00", "instance-id": "01"}')
    with pytest.raises(ValueError, match="simulated platform"):
        simulated_platform(authority)


def test_simulated_tokens_say_so_and_use_the_real_format(authority: SimulatedAuthority) -> None:
    token = simulate_cca_token(authority, report_data=RD)
    assert token.simulated and token.report_data == RD and token.kind == KIND
    raw = token.to_bytes()
    assert raw[:3] == b"\xd9\x01\x8f" and parse(raw) == token and parse(raw, KIND) == token
    assert parse(raw.hex().encode(), KIND) == token
    ev = simulate_composite(authority, KIND, report_data=RD)
    assert is_simulated(ev) and decode_composite(ev.to_bytes()) == ev and ev.cpu.certificates == b""
    with pytest.raises(ValueError, match="unknown simulated CCA field"):
        simulate_cca_token(authority, report_data=RD, mrtd=b"")
    with pytest.raises(ValueError, match="64 bytes"):
        simulate_cca_token(authority, report_data=RD[:32])
    with pytest.raises(EvidenceFormatError, match="initial-measurement"):
        simulate_cca_token(authority, report_data=RD, rim=bytes(20))


# -- appraisal ------------------------------------------------------------------------------------------


def _policy(**cca: Any) -> Policy:
    return Policy(tee_kinds=(KIND,), allow_simulation=True, cca=cca)


def _appraise(authority: SimulatedAuthority, policy: Policy, cpu: dict[str, Any] | None = None) -> Any:
    nonce, b = os.urandom(32), binding()
    evidence = simulate_composite(authority, KIND, nonce=nonce, binding=b, cpu=cpu)
    return appraise(evidence, policy, nonce=nonce, binding=b, options=options(authority))


def test_appraisal_end_to_end_with_the_binding(authority: SimulatedAuthority) -> None:
    reference = tee(KIND).reference(simulate_cca_token(authority, report_data=RD))
    result = _appraise(authority, _policy(**reference))
    assert result.accepted and result.simulated, result.reasons
    assert "SIMULATED" in str(result)
    claims = result.to_ear()
    assert KIND in str(claims)
    # the same evidence bound to another nonce fails the binding
    nonce, b = os.urandom(32), binding()
    evidence = simulate_composite(authority, KIND, nonce=nonce, binding=b)
    late = appraise(evidence, _policy(**reference), nonce=os.urandom(32), binding=b, options=options(authority))
    assert not late.accepted and any(v.rule == "require_binding" for v in late.violations)


@pytest.mark.parametrize(
    ("rule", "cpu", "evidence_field"),
    [
        ("cca.rim", {"rim": bytes(64)}, "realm.initial_measurement"),
        ("cca.rems", {"rems": [bytes(64)] * 3 + [b"\x01" * 64]}, "realm.extensible_measurements"),
        ("cca.rpv", {"rpv": b"\x07" * 64}, "realm.personalization_value"),
        ("cca.implementation_id", {"implementation_id": b"SIMULATED other" + bytes(17)}, "platform.implementation_id"),
        ("cca.platform_config", {"platform_config": b"\x01"}, "platform.config"),
        ("cca.sw_components", {"sw_components": ()}, "platform.sw_components"),
    ],
)
def test_each_table_field_is_a_violation_naming_itself(
    authority: SimulatedAuthority, rule: str, cpu: dict[str, Any], evidence_field: str
) -> None:
    reference = tee(KIND).reference(simulate_cca_token(authority, report_data=RD))
    if rule == "cca.implementation_id":  # another platform: endorse it too (under the same simulated CPAK)
        return _implementation_case(authority, reference, cpu)
    result = _appraise(authority, _policy(**reference), cpu)
    assert [(v.rule, v.evidence_field) for v in result.violations] == [(rule, evidence_field)], result.reasons
    assert not result.accepted and f"policy.{rule}" in str(result)


def _implementation_case(authority: SimulatedAuthority, reference: dict[str, Any], cpu: dict[str, Any]) -> None:
    from cchet.attest.tees.cca.endorsement import cpak_anchor

    platform = simulated_platform(authority)
    anchor = cpak_anchor(platform.cpak.public_key(), implementation_id=None, instance_id=None, simulated=True)
    opts = options(authority, anchors=(*options(authority).anchors, anchor))
    nonce, b = os.urandom(32), binding()
    evidence = simulate_composite(authority, KIND, nonce=nonce, binding=b, cpu=cpu)
    result = appraise(evidence, _policy(**reference), nonce=nonce, binding=b, options=opts)
    assert [v.rule for v in result.violations] == ["cca.implementation_id"], result.reasons


def test_all_violations_are_reported_at_once(authority: SimulatedAuthority) -> None:
    reference = tee(KIND).reference(simulate_cca_token(authority, report_data=RD))
    result = _appraise(authority, _policy(**reference), {"rim": bytes(64), "rpv": b"\x07" * 64, "debug": True})
    assert {v.rule for v in result.violations} == {"cca.rim", "cca.rpv", "allow_debug"}


def test_component_rules_follow_ccatoken(authority: SimulatedAuthority) -> None:
    token = simulate_cca_token(authority, report_data=RD)
    comps = [
        {"measurement": c.measurement.hex(), "signer_id": c.signer_id.hex()}
        for c in token.platform_claims.sw_components
    ]
    fails: list[tuple[Any, ...]] = []

    def rec(*a: Any) -> None:
        fails.append(a)

    tee(KIND).evaluate(
        token, tee(KIND).check_section({"sw_components": comps}), rec
    )  # type and version absent: not compared
    assert fails == []
    typed = [dict(c, type="OTHER") if i == 2 else c for i, c in enumerate(comps)]
    tee(KIND).evaluate(token, tee(KIND).check_section({"sw_components": typed}), rec)
    assert len(fails) == 1 and "component 2" in fails[0][3] and "type" in fails[0][3]
    fails.clear()
    two = tee(KIND).check_section({"sw_components": [typed, comps]})  # either list may match
    tee(KIND).evaluate(token, two, rec)
    assert fails == []


@pytest.mark.parametrize(
    ("lifecycle", "debug"),
    [
        (0x3000, False),
        (0x30FF, False),
        (0x4001, False),
        (0x5000, True),
        (0x1000, True),
        (0x2000, True),
        (0x6000, True),
        (0x0000, True),
        (0x7000, True),
        (0x2FFF, True),
    ],
)
def test_lifecycle_outside_the_secured_states_is_debug(
    authority: SimulatedAuthority, lifecycle: int, debug: bool
) -> None:
    token = simulate_cca_token(authority, report_data=RD, lifecycle=lifecycle)
    assert tee(KIND).debug(token) is debug
    result = _appraise(authority, _policy(rim=[DEFAULT_RIM.hex()]), {"lifecycle": lifecycle})
    assert result.accepted is not debug, result.reasons
    if debug:
        assert [v.rule for v in result.violations] == ["allow_debug"]
        allowed = replace(_policy(rim=[DEFAULT_RIM.hex()]), allow_debug=True)
        assert _appraise(authority, allowed, {"lifecycle": lifecycle}).accepted


def test_measurements_pinned_needs_the_rim(authority: SimulatedAuthority) -> None:
    from cchet.attest.appraise import evaluate, verify_evidence

    nonce, b = os.urandom(32), binding()
    evidence = simulate_composite(authority, KIND, nonce=nonce, binding=b)
    verified = verify_evidence(evidence, options(authority))
    real = Policy(tee_kinds=(KIND,), cca={"rpv": [bytes(64).hex()]})  # a real-root policy, RIM not pinned
    assert not real.pins_cpu(KIND) and Policy(tee_kinds=(KIND,), cca={"rim": [DEFAULT_RIM.hex()]}).pins_cpu(KIND)
    result = evaluate(verified, real, nonce=nonce, binding=b)
    assert {v.rule for v in result.violations} == {"allow_simulation", "measurements"}
    assert any("cca table" in v.evidence_field for v in result.violations if v.rule == "measurements")


def test_the_table_is_validated_and_survives_toml(tmp_path: Path, authority: SimulatedAuthority) -> None:
    reference = tee(KIND).reference(simulate_cca_token(authority, report_data=RD))
    policy = _policy(**{k: [v.upper() if isinstance(v, str) else v for v in vs] for k, vs in reference.items()})
    assert policy.cca == reference  # hex normalised to lowercase
    path = tmp_path / "p.toml"
    path.write_text(policy.to_toml())
    assert Policy.from_file(path) == policy and Policy.from_file(path).policy_id == policy.policy_id
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy(cca={"rim": []}).policy_id == Policy().policy_id  # an empty table changes no id
    for bad, word in [
        ({"mrtd": ["00"]}, "policy.cca: unknown field(s) mrtd"),
        ({"rim": ["zz"]}, "policy.cca.rim[0]"),
        ({"rim": ["00" * 20]}, "policy.cca.rim[0]: 20 bytes"),
        ({"rpv": ["00" * 32]}, "policy.cca.rpv[0]"),
        ({"rems": [["00" * 32] * 3]}, "policy.cca.rems[0]: expected the four"),
        ({"implementation_id": "00" * 32}, "policy.cca.implementation_id: expected a list"),
        ({"sw_components": [{"measurement": "00" * 32}]}, "signer_id: missing"),
        ({"sw_components": [{"measurement": "00" * 32, "signer_id": "00" * 32, "x": 1}]}, "unknown field(s) x"),
    ]:
        with pytest.raises(ValueError, match=re.escape(word)):
            Policy(cca=bad)
    with pytest.raises(ValueError, match=r"policy\.cca"):
        Policy.from_dict({"cca": "rim"})


def test_from_evidence_pins_the_table(authority: SimulatedAuthority) -> None:
    a = simulate_composite(authority, KIND, report_data=RD)
    b = simulate_composite(authority, KIND, report_data=RD, cpu={"rim": b"\x01" * 64, "rems": [b"\x02" * 64] * 4})
    policy = reference_policy([a, b], allow_simulation=True)
    assert policy.tee_kinds == (KIND,) and policy.pins_cpu(KIND)
    assert policy.cca["rim"] == [DEFAULT_RIM.hex(), (b"\x01" * 64).hex()]
    assert len(policy.cca["rems"]) == 2 and len(policy.cca["sw_components"]) == 1
    nonce, bd = os.urandom(32), binding()
    for cpu in ({}, {"rim": b"\x01" * 64, "rems": [b"\x02" * 64] * 4}):
        ev = simulate_composite(authority, KIND, nonce=nonce, binding=bd, cpu=cpu)
        assert appraise(ev, policy, nonce=nonce, binding=bd, options=options(authority)).accepted


def test_claims(authority: SimulatedAuthority) -> None:
    from cchet.attest.claims import cpu_claims

    token = simulate_cca_token(authority, report_data=RD, lifecycle=0x3003)
    claims = cpu_claims(CompositeEvidence(CpuEvidence(token)))
    assert claims["kind"] == KIND and claims["report_data"] == RD.hex() and claims["rim"] == DEFAULT_RIM.hex()
    assert claims["lifecycle"] == "0x3003" and claims["lifecycle_state"] == "secured" and claims["debug"] is False
    assert claims["sw_components"][0]["type"] == "RSE_BL1_2" and len(claims["rems"]) == 4


def test_custom_components_round_trip(authority: SimulatedAuthority) -> None:
    comps = (SwComponent(b"\x05" * 48, b"\x06" * 32), SwComponent(b"\x07" * 64, b"\x08" * 64, "X", "2", "sha-512"))
    token = simulate_cca_token(authority, report_data=RD, sw_components=comps)
    assert token.platform_claims.sw_components == comps and parse(token.to_bytes()) == token


# -- the broker, placement, info, attest, local attester ------------------------------------------------


def test_a_simulated_cca_node_gets_keys_from_the_broker(authority: SimulatedAuthority, tmp_path: Path) -> None:
    from cchet.broker.client import BrokerClient
    from tests.broker.owner import Owner, function_id, simulated_broker, simulated_node

    reference = tee(KIND).reference(simulate_cca_token(authority, report_data=RD))
    policy = Policy(name="cca", tee_kinds=(KIND,), allow_simulation=True, cca=reference)
    broker = simulated_broker(authority, tmp_path, policy)
    key, owner = broker.add_key(), Owner(broker)

    def client(kind: str, **overrides: Any) -> BrokerClient:
        return simulated_node(broker, authority, kind, "node-cca", **overrides)

    def ticket(tee_kind: str) -> bytes:
        return owner.ticket("f", [key.key_id], tee=tee_kind)

    released = client(KIND).keys([key.key_id], function=function_id("f").hex(), ticket=ticket(KIND))
    assert released[key.key_id] == key and released.simulated
    from cchet import KeyReleaseDenied

    with pytest.raises(KeyReleaseDenied, match=r"cca\.rim"):  # another realm image
        client(KIND, cpu={"rim": bytes(64)}).keys([key.key_id], function=function_id("f").hex(), ticket=ticket(KIND))
    with pytest.raises(KeyReleaseDenied):  # a TDX node cannot run a call placed on tee="cca"
        client("tdx").keys([key.key_id], function=function_id("f").hex(), ticket=ticket(KIND))


def test_placement_on_tee_cca(authority: SimulatedAuthority) -> None:
    from cchet.runtime.options import validate_options
    from cchet.runtime.registry import NodeRegistry

    assert validate_options({"tee": KIND}).tee == KIND
    registry = NodeRegistry(bytes(32), options(authority), _policy(rim=[DEFAULT_RIM.hex()]))
    result = _appraise(authority, _policy(rim=[DEFAULT_RIM.hex()]))
    registry._record("node-cca", result, hardened=False)
    assert registry.qualifying(KIND, None) == ["node-cca"] and registry.qualifying("tdx", None) == []
    assert registry.qualifying("any", None) == ["node-cca"]


def test_info_and_local_attester_look_at_paths_only(tmp_path: Path) -> None:
    from cchet.attest.tees.cca.attester import CcaAttester
    from cchet.attest.tees.cca.tee import CcaTee
    from cchet.platform.tee import detect_tee

    assert CcaTee(tmp_path).local_attester() is None
    assert detect_tee(tmp_path).kind is None
    (tmp_path / "sys/bus/platform/devices/arm-cca-dev").mkdir(parents=True)
    (tmp_path / "sys/kernel/config/tsm/report").mkdir(parents=True)
    info = detect_tee(tmp_path)
    assert info.kind == KIND and "/sys/bus/platform/devices/arm-cca-dev" in info.found
    attester = CcaTee(tmp_path).local_attester()
    assert isinstance(attester, CcaAttester) and attester.kind == KIND
    assert attester.tsm.root == tmp_path / "sys/kernel/config/tsm/report"


class FakeCcaKernel:
    """configfs-tsm of a CCA realm emulated on a folder: writing ``inblob`` makes the 'kernel' produce a token
    (simulated, for that challenge) in ``outblob`` and bump ``generation``."""

    def __init__(self, root: Path, authority: SimulatedAuthority, provider: str = "arm_cca_guest") -> None:
        from cchet.attest.attesters.configfs_tsm import TsmAttester

        outer = self

        class Tsm(TsmAttester):
            def make_entry(self) -> Path:
                entry = super().make_entry()
                (entry / "provider").write_text(provider + "\n")
                (entry / "generation").write_text("0\n")
                return entry

            def write(self, entry: Path, name: str, data: bytes) -> None:
                super().write(entry, name, data)
                (entry / "generation").write_text(f"{int((entry / 'generation').read_text()) + 1 + outer.race}\n")
                challenge = outer.answer if outer.answer is not None else data
                token = simulate_cca_token(authority, report_data=challenge)
                (entry / "outblob").write_bytes(outer.outblob if outer.outblob is not None else token.to_bytes())

            def remove_entry(self, entry: Path) -> None:
                shutil.rmtree(entry)

        self.tsm = Tsm(root, ccel=None)
        self.race = 0
        self.answer: bytes | None = None
        self.outblob: bytes | None = None


def test_the_attester_collects_a_token_through_configfs_tsm(tmp_path: Path, authority: SimulatedAuthority) -> None:
    from cchet.attest.tees.cca.attester import CcaAttester
    from cchet.errors import AttestationError, DeviceUnavailable

    root = tmp_path / "tsm"
    with pytest.raises(DeviceUnavailable, match="configfs"):
        CcaAttester(root).collect(RD)
    root.mkdir()
    kernel = FakeCcaKernel(root, authority)
    evidence = CcaAttester(root, tsm=kernel.tsm).collect(RD)
    assert isinstance(evidence.report, CcaToken) and evidence.report.report_data == RD
    assert list(root.iterdir()) == []  # the entry is removed
    with pytest.raises(ValueError, match="64 bytes"):
        CcaAttester(root, tsm=kernel.tsm).collect(RD[:32])
    kernel.answer = bytes(64)
    with pytest.raises(AttestationError, match="challenge"):
        CcaAttester(root, tsm=kernel.tsm).collect(RD)
    kernel.answer, kernel.race = None, 1
    with pytest.raises(AttestationError, match="concurrent"):
        CcaAttester(root, tsm=kernel.tsm).collect(RD)
    kernel.race, kernel.outblob = 0, b"\xd9\x01\x8f\x00"
    with pytest.raises(EvidenceFormatError):
        CcaAttester(root, tsm=kernel.tsm).collect(RD)
    with pytest.raises(DeviceUnavailable, match="tdx_guest"):
        CcaAttester(root, tsm=FakeCcaKernel(root, authority, provider="tdx_guest").tsm).collect(RD)


@pytest.mark.skipif(not Path("/sys/bus/platform/devices/arm-cca-dev").exists(), reason="not an Arm CCA realm")
def test_on_a_real_realm() -> None:
    token = tee(KIND).local_attester().collect(RD).report  # type: ignore[union-attr]
    assert token.report_data == RD


def test_cchet_attest_simulate_cca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cchet.cli import main

    policy = tmp_path / "p.toml"
    policy.write_text(f'tee_kinds = ["cca"]\nallow_simulation = true\n[cca]\nrim = ["{DEFAULT_RIM.hex()}"]\n')
    out = tmp_path / "ev.json"
    code = main(
        ["attest", "--simulate", KIND, "--key-dir", str(tmp_path / "k"), "--policy", str(policy), "--out", str(out)]
    )
    text = capsys.readouterr().out
    assert code == 0 and "SIMULATED" in text, text
    assert parse(Path(f"{out}.cpu.bin").read_bytes()).kind == KIND
    assert decode_composite(out.read_bytes()).cpu.kind == KIND


def test_one_platform_signs_each_token_afresh(authority: SimulatedAuthority) -> None:
    a = simulate_cca_token(authority, report_data=RD)
    b = simulate_cca_token(authority, report_data=RD)
    assert a.platform_claims == b.platform_claims and a.realm_claims == b.realm_claims  # same platform, same realm
    assert a.platform.signature != b.platform.signature  # ECDSA with fresh randomness
    later = options(authority).replace(clock=lambda: NOW + dt.timedelta(days=3650))
    assert verify_cca_token(a, later, expected_report_data=RD)[1] == []  # tokens carry no time
