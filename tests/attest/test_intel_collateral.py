"""The Intel collateral parser (cchet.attest.formats.intel_collateral): shape errors name their field; and
verification parses collateral only after authenticating it, a malformed one being a tagged failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from cchet.attest.formats.intel_collateral import parse_qe_identity, parse_tcb_info
from cchet.attest.rawsig import raw_from_der
from cchet.attest.simulate import SimulatedAuthority, simulate_sgx_quote, simulate_tdx_quote, simulated_collateral
from cchet.attest.simulate.verifier import simulation_options
from cchet.attest.verify.intel import verify_quote_device
from cchet.errors import EvidenceFormatError
from tests.attest.conftest import NOW

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def tdx_collateral(authority: SimulatedAuthority) -> dict[str, str]:
    return simulated_collateral(authority, simulate_tdx_quote(authority, report_data=bytes(64)), now=NOW)


def _set(path: tuple[object, ...], value: object) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        if value is _DROP:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return edit


_DROP = object()

TCB_INFO_ERRORS = [
    (("fmspc",), "00906ED500", "tcb_info.fmspc"),
    (("fmspc",), "00906ED5000G", "tcb_info.fmspc"),
    (("pceId",), 0, "tcb_info.pceId"),
    (("id",), "SEV", "tcb_info.id"),
    (("version",), True, "tcb_info.version"),
    (("version",), 256, "tcb_info.version"),
    (("issueDate",), "2026-05-31 12:00:00Z", "tcb_info.issueDate"),
    (("nextUpdate",), "2026-02-30T00:00:00Z", "tcb_info.nextUpdate"),
    (("nextUpdate",), _DROP, "tcb_info.nextUpdate"),
    (("tcbLevels",), {}, "tcb_info.tcbLevels"),
    (("tcbLevels", 0, "tcbStatus"), "Fine", "tcb_info.tcbLevels[0].tcbStatus"),
    (("tcbLevels", 0, "advisoryIDs"), [7], "tcb_info.tcbLevels[0].advisoryIDs[0]"),
    (("tcbLevels", 0, "tcbDate"), _DROP, "tcb_info.tcbLevels[0].tcbDate"),
    (("tcbLevels", 0, "tcb", "pcesvn"), 65536, "tcb_info.tcbLevels[0].tcb.pcesvn"),
    (("tcbLevels", 0, "tcb", "sgxtcbcomponents"), [{"svn": 1}] * 15, "tcb_info.tcbLevels[0].tcb.sgxtcbcomponents"),
    (("tcbLevels", 0, "tcb", "sgxtcbcomponents", 3, "svn"), 256, "tcb_info.tcbLevels[0].tcb.sgxtcbcomponents[3]"),
    (("tcbLevels", 0, "tcb", "sgxtcbcomponents", 3), [3], "tcb_info.tcbLevels[0].tcb.sgxtcbcomponents[3]"),
    (("tcbLevels", 0, "tcb", "tdxtcbcomponents"), "16", "tcb_info.tcbLevels[0].tcb.tdxtcbcomponents"),
    (("tcbLevels", 0, "tcb", "tdxtcbcomponents"), _DROP, "tcb_info.tcbLevels[0].tcb.tdxtcbcomponents"),
    (("tdxModule", "attributesMask"), "FF", "tcb_info.tdxModule.attributesMask"),
    (("tdxModuleIdentities", 0, "mrsigner"), "00" * 47, "tcb_info.tdxModuleIdentities[0].mrsigner"),
    (
        ("tdxModuleIdentities", 0, "tcbLevels", 0, "tcb", "isvsvn"),
        -1,
        "tcb_info.tdxModuleIdentities[0].tcbLevels[0].tcb.isvsvn",
    ),
]
QE_IDENTITY_ERRORS = [
    (("mrsigner",), "00" * 31, "qe_identity.mrsigner"),
    (("miscselect",), "0000000", "qe_identity.miscselect"),
    (("attributesMask",), None, "qe_identity.attributesMask"),
    (("isvprodid",), 1.0, "qe_identity.isvprodid"),
    (("tcbLevels", 0, "tcb"), [], "qe_identity.tcbLevels[0].tcb"),
    (("tcbLevels", 0, "tcb", "isvsvn"), "4", "qe_identity.tcbLevels[0].tcb.isvsvn"),
]


@pytest.mark.parametrize(("path", "value", "field"), TCB_INFO_ERRORS)
def test_tcb_info_errors_name_the_field(
    tdx_collateral: dict[str, str], path: tuple[object, ...], value: object, field: str
) -> None:
    doc = json.loads(tdx_collateral["tcb_info"])
    _set(path, value)(doc)
    with pytest.raises(EvidenceFormatError) as e:
        parse_tcb_info(json.dumps(doc))
    assert e.value.field == field


@pytest.mark.parametrize(("path", "value", "field"), QE_IDENTITY_ERRORS)
def test_qe_identity_errors_name_the_field(
    tdx_collateral: dict[str, str], path: tuple[object, ...], value: object, field: str
) -> None:
    doc = json.loads(tdx_collateral["qe_identity"])
    _set(path, value)(doc)
    with pytest.raises(EvidenceFormatError) as e:
        parse_qe_identity(json.dumps(doc))
    assert e.value.field == field


@pytest.mark.parametrize("text", ["", "[]", "null", "{", '"x"', "\udcff", b"\xff\xfe"])
def test_text_that_is_no_json_object(text: str | bytes) -> None:
    for parse, field in ((parse_tcb_info, "tcb_info"), (parse_qe_identity, "qe_identity")):
        with pytest.raises(EvidenceFormatError) as e:
            parse(text)
        assert e.value.field == field


def test_sgx_tcb_info_needs_no_tdx_components(authority: SimulatedAuthority) -> None:
    collateral = simulated_collateral(authority, simulate_sgx_quote(authority, report_data=bytes(64)), now=NOW)
    info = parse_tcb_info(collateral["tcb_info"])
    assert info.id == "SGX" and info.tcb_levels[0].tcb.tdx_svns is None and info.tdx_module is None


def test_unknown_fields_and_component_labels_are_ignored(tdx_collateral: dict[str, str]) -> None:
    doc = json.loads(tdx_collateral["tcb_info"])
    doc["futureField"] = {"anything": 1}
    doc["tcbLevels"][0]["tcb"]["futurecomponents"] = []
    doc["tcbLevels"][0]["tcb"]["sgxtcbcomponents"][0].update(category="BIOS", type=None)
    assert parse_tcb_info(json.dumps(doc)) == parse_tcb_info(tdx_collateral["tcb_info"])


# Verification: authenticate, then parse --------------------------------------------------------------------


def _checks(authority: SimulatedAuthority, collateral: dict[str, str]) -> tuple[str | None, set[str]]:
    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    device, failures = verify_quote_device(quote, simulation_options(authority, now=NOW, collateral=collateral))
    return device.tcb_status, {getattr(f, "check", "?") for f in failures}


def _signed(
    authority: SimulatedAuthority, collateral: dict[str, str], name: str, text: str, key: str
) -> dict[str, str]:
    return {**collateral, name: text, f"{name}_signature": raw_from_der(authority.sign(key, text.encode()), 32).hex()}


@pytest.mark.parametrize("name", ["tcb_info", "qe_identity"])
def test_unauthenticated_text_is_not_parsed(authority: SimulatedAuthority, name: str) -> None:
    """Malformed text whose signature does not verify reports the signature only: it was never parsed."""
    col = simulated_collateral(authority, simulate_tdx_quote(authority, report_data=bytes(64)), now=NOW)
    assert _checks(authority, {**col, name: '{"tcbLevels": 7}'}) == (None, {f"intel.{name}_signature"})


@pytest.mark.parametrize("name", ["tcb_info", "qe_identity"])
def test_authentic_malformed_text_is_a_tagged_failure(authority: SimulatedAuthority, name: str) -> None:
    """Malformed text the TCB signing key did sign parses after authentication and fails as malformed."""
    col = simulated_collateral(authority, simulate_tdx_quote(authority, report_data=bytes(64)), now=NOW)
    doc = json.loads(col[name])
    doc["tcbLevels"][0]["tcb"] = {}
    signed = _signed(authority, col, name, json.dumps(doc), "intel_tcb_signing")
    assert _checks(authority, signed) == (None, {"intel.collateral_missing"})


def test_collateral_values_that_are_not_text_are_malformed(authority: SimulatedAuthority) -> None:
    col: dict[str, Any] = dict(
        simulated_collateral(authority, simulate_tdx_quote(authority, report_data=bytes(64)), now=NOW)
    )
    col["tcb_info"] = json.loads(col["tcb_info"])  # an object where dcap-qvl's JSON has its text
    assert _checks(authority, col) == (None, {"intel.collateral_missing"})
