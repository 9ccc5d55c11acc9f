"""Policy is data: keyword construction, eager validation, TOML/JSON/YAML loading, stable ids."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from cchet import Policy

MRTD = "ab" * 48


def test_defaults_are_strict() -> None:
    p = Policy()
    assert not p.allow_simulation and not p.allow_debug and p.require_binding
    assert p.measurements == "pinned" and p.min_tcb_status == "UpToDate" and p.max_nonce_age_s == 60


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        Policy("name")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mrtd": ["ab" * 47]}, "mrtd"),
        ({"mrtd": ["zz" * 48]}, "mrtd"),
        ({"mrenclave": ["ab" * 48]}, "mrenclave"),
        ({"tee_kinds": ["tdx", "sev"]}, "tee_kinds"),
        ({"tee_kinds": []}, "tee_kinds"),
        ({"measurements": "some"}, "measurements"),
        ({"min_tcb_status": "Fine"}, "min_tcb_status"),
        ({"gpu": "maybe"}, "gpu"),
        ({"snp_min_tcb": [1, 2, 3]}, "snp_min_tcb"),
        ({"snp_vmpl": 4}, "snp_vmpl"),
        ({"min_driver_version": "550.x"}, "min_driver_version"),
        ({"max_nonce_age_s": 0}, "max_nonce_age_s"),
        ({"allow_simulation": "yes"}, "allow_simulation"),
        ({"isv_prod_id": -1}, "isv_prod_id"),
    ],
)
def test_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"policy.{field}"):
        Policy(**kwargs)  # type: ignore[arg-type]


def test_hex_is_normalised() -> None:
    assert Policy(mrtd=["0x" + MRTD.upper()]).mrtd == (MRTD,)
    assert Policy(mrtd=[bytes.fromhex(MRTD)]).mrtd == (MRTD,)  # type: ignore[list-item]


def test_unknown_fields_list_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown policy field.*mrdt.*valid fields: name"):
        Policy.from_dict({"mrdt": [MRTD]})


def test_toml_round_trip(tmp_path: Path) -> None:
    p = Policy(
        name="prod", mrtd=[MRTD], snp_min_tcb=(1, 2, 3, 4), gpu="required", min_driver_version="550.54"
    )
    path = tmp_path / "policy.toml"
    path.write_text(p.to_toml())
    q = Policy.from_file(path)
    assert q == p and q.policy_id == p.policy_id and q.policy_id.startswith("prod:")


def test_json_and_yaml(tmp_path: Path) -> None:
    data = {"mrtd": [MRTD], "allow_debug": False, "tee_kinds": ["tdx"]}
    (tmp_path / "p.json").write_text(json.dumps(data))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"policy": data}))
    assert Policy.from_file(tmp_path / "p.json") == Policy.from_file(tmp_path / "p.yaml") == Policy(**data)  # type: ignore[arg-type]


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "p.ini").write_text("x")
    with pytest.raises(ValueError, match=r"toml, \.json, \.yaml"):
        Policy.from_file(tmp_path / "p.ini")
    (tmp_path / "p.toml").write_text("mrtd = [")
    with pytest.raises(ValueError, match=r"p\.toml"):
        Policy.from_file(tmp_path / "p.toml")
    (tmp_path / "p.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="one table"):
        Policy.from_file(tmp_path / "p.yaml")


def test_policy_id_changes_with_content() -> None:
    assert Policy(mrtd=[MRTD]).policy_id != Policy(mrtd=["cd" * 48]).policy_id
    assert Policy(mrtd=[MRTD]).digest == Policy(mrtd=[MRTD]).digest


def test_measurements_any_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cchet.attest.policy"):
        Policy(measurements="any")
    assert any("ANY code" in r.getMessage() for r in caplog.records)


def test_malformed_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("mrtd: [unclosed\n")
    with pytest.raises(ValueError, match=r"p\.yml"):
        Policy.from_file(tmp_path / "p.yml")
    (tmp_path / "p.json").write_text("{")
    with pytest.raises(ValueError, match=r"p\.json"):
        Policy.from_file(tmp_path / "p.json")
