"""Reference policies from evidence, the simulated attester the runtime uses, and local TEE detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from cchet.attest import Policy, appraise
from cchet.attest.attesters import GramineAttester, TsmAttester, local_attester
from cchet.attest.binding import Binding
from cchet.attest.formats import parse
from cchet.attest.reference import is_simulated, reference_policy, reference_values
from cchet.attest.simulate import SimulatedAuthority, simulation_options
from cchet.attest.simulate.attester import SimulatedAttester, parse_kind
from cchet.errors import DeviceUnavailable
from tests.attest.conftest import NOW
from tests.conftest import fixture_path


@pytest.mark.parametrize(
    ("spec", "want"), [("tdx", ("tdx", 0)), ("snp+gpu", ("snp", 1)), ("sgx+3gpu", ("sgx", 3))]
)
def test_parse_kind(spec: str, want: tuple[str, int]) -> None:
    assert parse_kind(spec) == want


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nitro", "expected one of"),
        ("tdx+gpus", "expected one of"),
        ("tdx+xgpu", "must be a number"),
        ("", "expected"),
    ],
)
def test_parse_kind_rejects(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_kind(spec)


def test_reference_policy_from_simulated_attester(authority: SimulatedAuthority) -> None:
    attester = SimulatedAttester(authority, "tdx", 1)
    unbound = attester.collect(bytes(32), None)
    assert unbound.cpu.report.report_data == bytes(64) and is_simulated(unbound)
    policy = reference_policy([unbound], name="sim", allow_simulation=True, gpu="required")
    assert policy.mrtd and policy.rtmr3 and policy.gpu_rim_ids and policy.gpu == "required"
    nonce, binding = bytes(range(32)), Binding(bytes(32), 0x20, 1, 3, b"pk", bytes(32))
    bound = attester.collect(nonce, binding)
    result = appraise(
        bound, policy, nonce=nonce, binding=binding, options=simulation_options(authority, now=NOW)
    )
    assert result.accepted, result.reasons


def test_reference_values_merge_and_real_fixtures() -> None:
    tdx = parse(fixture_path("dcap_qvl/tdx_quote").read_bytes())
    sgx = parse(fixture_path("dcap_qvl/sgx_quote").read_bytes())
    snp = parse(fixture_path("go_sev_guest/attestation.bin").read_bytes())
    values = reference_values([tdx, sgx, snp, tdx])
    assert values["tee_kinds"] == ["tdx", "sgx", "snp"] and len(values["mrtd"]) == 1
    assert values["mrenclave"][0].startswith("33d8736d") and values["snp_measurement"][0].startswith(
        "b07af962"
    )
    assert not is_simulated(tdx)
    Policy(**values)  # the values make a valid policy


def test_local_attester_detection(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="simulate"):
        local_attester(tsm_root=tmp_path / "none", gramine_device=tmp_path / "none", gpus=False)
    tsm = tmp_path / "tsm"
    tsm.mkdir()
    assert isinstance(local_attester(tsm_root=tsm, gpus=False).cpu, TsmAttester)
    dev = tmp_path / "attestation"
    dev.mkdir()
    (dev / "attestation_type").write_text("dcap")
    found = local_attester(tsm_root=tmp_path / "none", gramine_device=dev, gpus=False)
    assert isinstance(found.cpu, GramineAttester) and found.gpus is None
