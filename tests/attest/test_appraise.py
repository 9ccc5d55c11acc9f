"""appraise(): one result with every reason, SIMULATED stamped everywhere, wire bytes accepted."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

import cchet
from cchet.attest import AttestationResult, Policy, appraise, default_options
from cchet.attest.binding import Binding
from cchet.attest.formats.dcap import Quote
from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulation_options
from cchet.errors import PolicyViolation, VerificationError
from tests.attest.conftest import NOW

NONCE = bytes(range(32))
BINDING = Binding(bytes(32), 0x0020, 0x0001, 0x0003, b"pk", bytes(32))
ALLOW = Policy(allow_simulation=True)


@pytest.fixture
def evidence(authority: SimulatedAuthority) -> cchet.attest.CompositeEvidence:
    return simulate_composite(authority, "tdx", nonce=NONCE, binding=BINDING, gpus=1)


def test_public_names() -> None:
    assert (
        cchet.Policy is Policy and cchet.appraise is appraise and cchet.AttestationResult is AttestationResult
    )


def test_accepted_result_forms(
    authority: SimulatedAuthority, evidence: cchet.attest.CompositeEvidence
) -> None:
    result = appraise(
        evidence.to_bytes(),
        ALLOW,
        nonce=NONCE,
        binding=BINDING,
        options=simulation_options(authority, now=NOW),
    )
    assert result.accepted and result.simulated and result.reasons == ()
    result.raise_for_status()
    assert [d.device for d in result.devices] == ["cpu", "gpu0"]
    assert all(d.status == "affirming" and d.simulated for d in result.devices)
    assert result.device("cpu").claims["tcb_status"] == "UpToDate"
    assert result.device("gpu0").claims["driver_version"] == "550.90.07"
    ear = json.loads(result.to_json())
    assert ear["ear.status"] == "affirming" and ear["cchet.simulated"] is True
    assert (
        ear["submods"]["cpu"]["ear.veraison.annotated-evidence"]["mrtd"]
        == result.device("cpu").claims["mrtd"]
    )
    assert "SIMULATED" in str(result) and "SIMULATED" in result._repr_html_()
    assert result.gpu_transcripts == tuple(evidence.gpu_transcripts())
    assert result.policy_id == ALLOW.policy_id and len(result.evidence_digest) == 64
    with pytest.raises(KeyError):
        result.device("gpu7")


def test_verification_failures_and_violations_are_both_listed(
    authority: SimulatedAuthority, evidence: cchet.attest.CompositeEvidence
) -> None:
    gpu = evidence.gpus[0]
    bad_sig = bytes([gpu.report.response.signature[0] ^ 1]) + gpu.report.response.signature[1:]
    tampered = dataclasses.replace(
        evidence,
        gpus=(
            dataclasses.replace(
                gpu,
                report=dataclasses.replace(
                    gpu.report, response=dataclasses.replace(gpu.report.response, signature=bad_sig)
                ),
            ),
        ),
    )
    result = appraise(
        tampered,
        Policy(mrtd=["00" * 48]),
        nonce=NONCE,
        binding=BINDING,
        options=simulation_options(authority, now=NOW),
    )
    assert not result.accepted
    assert any("gpu0: SPDM signature" in f for f in result.verification_failures)
    assert {v.rule for v in result.violations} == {"allow_simulation", "mrtd", "require_binding"}
    assert result.simulated and "SIMULATED" in str(result)
    assert result.device("gpu0").status == "contraindicated"
    with pytest.raises(VerificationError):
        result.raise_for_status()
    html = result._repr_html_()
    assert "REJECTED" in html and "policy.mrtd" in html


def test_policy_violation_exception_lists_every_rule(
    authority: SimulatedAuthority, evidence: cchet.attest.CompositeEvidence
) -> None:
    result = appraise(
        evidence,
        Policy(mrtd=["00" * 48], gpu="forbidden"),
        nonce=NONCE,
        binding=BINDING,
        options=simulation_options(authority, now=NOW),
    )
    with pytest.raises(PolicyViolation) as e:
        result.raise_for_status()
    assert len(e.value.violations) == 3 and all("policy." in v for v in e.value.violations)


def test_unparsable_evidence_is_a_reason_not_an_exception() -> None:
    result = appraise(b"{not json", ALLOW, nonce=NONCE, binding=BINDING, options=default_options(now=NOW))
    assert not result.accepted and result.reasons[0].startswith("evidence does not parse")
    assert result.devices == ()


def test_default_options_trust_only_the_pinned_vendor_roots(evidence: cchet.attest.CompositeEvidence) -> None:
    result = appraise(evidence, ALLOW, nonce=NONCE, binding=BINDING, options=default_options(now=NOW))
    assert not result.accepted and result.simulated  # unverified, but it names a SIMULATED authority
    assert result.verifier == "cchet-vendor-verifier"
    assert any("pck_chain: chain does not end at a trusted root" in r for r in result.reasons)


def test_tdx_quote_tampering_is_a_verification_failure(
    authority: SimulatedAuthority, evidence: cchet.attest.CompositeEvidence
) -> None:
    quote = evidence.cpu.report
    assert isinstance(quote, Quote)
    forged = dataclasses.replace(
        evidence,
        cpu=dataclasses.replace(
            evidence.cpu,
            report=dataclasses.replace(quote, body=dataclasses.replace(quote.body, mr_td=bytes(48))),
        ),
    )
    result = appraise(
        forged, ALLOW, nonce=NONCE, binding=BINDING, options=simulation_options(authority, now=NOW)
    )
    assert result.verification_failures == ("quote signature does not verify with the attestation key",)


def test_policy_type_is_checked(evidence: cchet.attest.CompositeEvidence) -> None:
    with pytest.raises(TypeError, match="Policy"):
        appraise(evidence, {"allow_simulation": True}, nonce=NONCE, binding=BINDING)  # type: ignore[arg-type]


def test_importing_cchet_loads_no_heavy_optional_modules() -> None:
    code = (
        "import sys, cchet, cchet.attest; from cchet.attest import Policy, appraise; "
        "bad = [m for m in ('ray', 'cupy', 'pynvml', 'yaml', 'dcap_qvl') if m in sys.modules]; "
        "assert not bad, bad; assert 'cchet.attest.simulate' not in sys.modules; "
        "assert 'cryptography.x509' not in sys.modules, 'x509 loaded at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_mutated_evidence_never_raises(authority: SimulatedAuthority) -> None:
    """Tampered reports and certificate text give reasons, never exceptions (cryptography's own errors on
    malformed certificates included), and tampered signed bytes are never accepted. A tampered certificate
    beside the leaf may be accepted only as one the path does not use: the evidence verifies without it."""
    import base64

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from cchet.attest.formats.certchain import der_to_pem, parse_pem_chain

    seeds = [simulate_composite(authority, k, nonce=NONCE, binding=BINDING, gpus=1) for k in ("tdx", "snp")]
    opts = simulation_options(authority, now=NOW)
    targets = [("cpu", "report"), ("gpus", 0, "report"), ("cpu", "certificates"), ("gpus", 0, "certificates")]

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        seed=st.sampled_from(seeds),
        where=st.sampled_from(targets),
        pos=st.integers(0, 10**6),
        bit=st.integers(0, 7),
        char=st.sampled_from("ABCDEFabcdef0123456789+/"),
    )
    def run(
        seed: cchet.attest.CompositeEvidence, where: tuple[object, ...], pos: int, bit: int, char: str
    ) -> None:
        doc = json.loads(seed.to_bytes())
        target = doc
        for key in where[:-1]:
            target = target[key]  # type: ignore[index]
        value = target[where[-1]]  # type: ignore[index]
        if where[-1] == "report":
            raw = bytearray(base64.b64decode(value))
            raw[pos % len(raw)] ^= 1 << bit
            target[where[-1]] = base64.b64encode(raw).decode()  # type: ignore[index]
        elif value:
            text = list(value)
            text[pos % len(text)] = char
            target[where[-1]] = "".join(text)  # type: ignore[index]
        result = appraise(json.dumps(doc).encode(), ALLOW, nonce=NONCE, binding=BINDING, options=opts)
        if result.accepted and where[-1] == "report":
            changed = base64.b64decode(target[where[-1]]) != base64.b64decode(value)  # type: ignore[index]
            # only bytes no signature covers may differ: a quote's PEM chain text (the chains still verify)
            assert not changed or (where[0] == "cpu" and seed.cpu.kind == "tdx")
        if result.accepted and where[-1] == "certificates" and value:
            before = parse_pem_chain(value.encode()).ders
            after = parse_pem_chain(target[where[-1]].encode()).ders  # type: ignore[index]
            assert after[0] == before[0]  # the leaf never changes unnoticed
            target[where[-1]] = b"".join(der_to_pem(d) for d in after if d in before).decode()  # type: ignore[index]
            assert appraise(json.dumps(doc).encode(), ALLOW, nonce=NONCE, binding=BINDING, options=opts).accepted

    run()
