"""Parsers raise nothing but EvidenceFormatError on random bytes and on mutated real fixtures (Intel
collateral: on random and mutated JSON, and generated collateral round-trips)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest import formats
from cchet.attest.formats.intel_collateral import (
    IdentityLevel,
    PlatformTcb,
    QeIdentity,
    TcbInfo,
    TcbLevel,
    TdxModule,
    TdxModuleIdentity,
    parse_qe_identity,
    parse_tcb_info,
)
from cchet.attest.tcb import STATUS_ORDER
from cchet.errors import EvidenceFormatError
from tests.conftest import fixtures_root

SEEDS = [
    ("dcap_qvl/tdx_quote", "quote"),
    ("dcap_qvl/sgx_quote", "quote"),
    ("dcap_qvl/tdx_quote_outdated", "quote"),
    ("go_sev_guest/attestation.bin", "snp"),
    ("nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt", "spdm"),
    ("go_tdx_guest/ccel/ccel_data.dat", "ccel"),
]
KINDS = ["auto", "quote", "snp", "spdm", "ccel", "composite", "pem-chain"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seed(name: str) -> bytes | None:
    root = fixtures_root()
    if root is None:
        return None
    data = (root / name).read_bytes()
    if name.endswith(".txt"):
        data = bytes.fromhex(data.decode().strip())
    if name.endswith(".dat") and "ccel" in name:
        data = data[:20000]  # the events; the rest is 0xFF padding
    return data


def _parse_or_format_error(data: bytes, kind: str) -> None:
    try:
        parsed = formats.parse(data, kind=kind)
    except EvidenceFormatError:
        return
    # whatever parses must serialize to bytes that parse to the same thing
    assert formats.parse(formats.serialize(parsed), kind=kind) == parsed


@FUZZ
@given(data=st.binary(max_size=6000), kind=st.sampled_from(KINDS))
def test_random_bytes(data: bytes, kind: str) -> None:
    _parse_or_format_error(data, kind)


@FUZZ
@given(data=st.binary(min_size=1, max_size=64).map(lambda b: b"\x04\x00\x02\x00\x81\x00\x00\x00" + b))
def test_random_quote_prefixes(data: bytes) -> None:
    _parse_or_format_error(data, "quote")


@pytest.mark.parametrize(("name", "kind"), SEEDS)
def test_mutated_fixtures(name: str, kind: str) -> None:
    seed = _seed(name)
    if seed is None:
        pytest.skip("real-world fixtures not found: set CCHET_FIXTURES (see shared/fixtures/MANIFEST.md)")

    @FUZZ
    @given(
        flips=st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(1, 255)), min_size=1, max_size=8),
        cut=st.integers(0, len(seed)),
        extra=st.binary(max_size=16),
    )
    def run(flips: list[tuple[int, int]], cut: int, extra: bytes) -> None:
        mutated = bytearray(seed)
        for pos, x in flips:
            mutated[pos] ^= x
        _parse_or_format_error(bytes(mutated), kind)
        _parse_or_format_error(bytes(mutated[:cut]) + extra, kind)
        _parse_or_format_error(bytes(mutated[:cut]) + extra, "auto")

    run()


def test_format_errors_name_offset_and_field() -> None:
    with pytest.raises(EvidenceFormatError) as e:
        formats.parse(b"\x04\x00\x02\x00\x81\x00\x00\x00" + bytes(10), kind="quote")
    assert e.value.field == "header.qe_vendor_id" and e.value.offset == 12


def test_reserved_bytes_must_be_zero(fixtures: Path) -> None:
    data = bytearray((fixtures / "go_sev_guest/attestation.bin").read_bytes())
    data[0x4C] = 1
    with pytest.raises(EvidenceFormatError) as e:
        formats.parse(bytes(data), kind="snp")
    assert e.value.field == "reserved0" and e.value.offset == 0x4C


@pytest.fixture(scope="module")
def composite_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from cchet.attest.simulate import SimulatedAuthority, simulate_composite

    authority = SimulatedAuthority.open(tmp_path_factory.mktemp("fuzz") / "k")
    return simulate_composite(authority, "snp", report_data=bytes(64), gpus=1).to_bytes()


def test_mutated_composite_json(composite_seed: bytes) -> None:
    doc = json.loads(composite_seed)
    paths = [
        ("format",),
        ("cpu", "kind"),
        ("cpu", "report"),
        ("cpu", "certificates"),
        ("gpus",),
        ("gpus", 0, "index"),
        ("gpus", 0, "report"),
        ("gpus", 0, "certificates"),
        ("cpu",),
    ]
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 300),
        st.text(max_size=12),
        st.binary(max_size=8).map(lambda b: b.hex()),
        st.lists(st.integers(), max_size=2),
    )

    @FUZZ
    @given(path=st.sampled_from(paths), value=values)
    def run(path: tuple[object, ...], value: object) -> None:
        mutated = json.loads(composite_seed)
        target = mutated
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]
        _parse_or_format_error(json.dumps(mutated).encode(), "composite")

    run()
    assert doc["format"] == "cchet-evidence/v1"


# Intel collateral (TCB info, QE identity): random text, mutated real and simulated documents, and generated
# objects; the parser raises nothing but EvidenceFormatError, and what parses round-trips.

COLLATERAL_PARSERS: dict[str, Callable[[str], TcbInfo | QeIdentity]] = {
    "tcb_info": parse_tcb_info,
    "qe_identity": parse_qe_identity,
}
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)


def _collateral_parses_or_format_error(text: str, name: str) -> None:
    parse = COLLATERAL_PARSERS[name]
    try:
        parsed = parse(text)
    except EvidenceFormatError:
        return
    assert parse(parsed.to_json()) == parsed


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a value inside a JSON document (keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


@pytest.fixture(scope="module")
def collateral_seeds(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    from cchet.attest.simulate import SimulatedAuthority, simulate_sgx_quote, simulate_tdx_quote, simulated_collateral
    from tests.attest.conftest import NOW

    authority = SimulatedAuthority.open(tmp_path_factory.mktemp("fuzz-collateral") / "k")
    seeds = []
    for quote in (
        simulate_tdx_quote(authority, report_data=bytes(64)),
        simulate_sgx_quote(authority, report_data=bytes(64)),
    ):
        collateral = simulated_collateral(authority, quote, now=NOW)
        seeds += [(collateral[name], name) for name in COLLATERAL_PARSERS]
    root = fixtures_root()
    if root is not None:
        for name in ("dcap_qvl/sgx_quote_collateral.json", "dcap_qvl/tdx_quote_collateral.json"):
            collateral = json.loads((root / name).read_text())
            seeds += [(collateral[field], field) for field in COLLATERAL_PARSERS]
    return seeds


@FUZZ
@given(
    text=st.one_of(st.text(max_size=200), JSON_VALUES.map(json.dumps)), name=st.sampled_from(sorted(COLLATERAL_PARSERS))
)
def test_random_collateral_text(text: str, name: str) -> None:
    _collateral_parses_or_format_error(text, name)


def test_mutated_intel_collateral(collateral_seeds: list[tuple[str, str]]) -> None:
    @FUZZ
    @given(seed=st.sampled_from(collateral_seeds), data=st.data())
    def run(seed: tuple[str, str], data: st.DataObject) -> None:
        text, name = seed
        doc = json.loads(text)
        path = data.draw(st.sampled_from(_paths(doc)))
        target = doc
        for key in path[:-1]:
            target = target[key]
        if data.draw(st.booleans()):
            del target[path[-1]]
        else:
            target[path[-1]] = data.draw(JSON_VALUES)
        _collateral_parses_or_format_error(json.dumps(doc), name)

    run()


_TIMES = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)).map(
    lambda t: t.replace(microsecond=0)
)
_ADVISORIES = st.lists(st.text(min_size=1, max_size=14), max_size=3).map(tuple)
_STATUS = st.sampled_from(STATUS_ORDER)


_SVNS = st.lists(st.integers(0, 255), min_size=16, max_size=16).map(tuple)
_IDENTITY_LEVELS = st.lists(
    st.builds(IdentityLevel, st.integers(0, 0xFFFF), _TIMES, _STATUS, _ADVISORIES), max_size=3
).map(tuple)


@st.composite
def tcb_infos(draw: st.DrawFn) -> TcbInfo:
    tdx = draw(st.booleans())
    bytes_of = st.binary
    level = st.builds(
        TcbLevel,
        st.builds(PlatformTcb, _SVNS, st.integers(0, 0xFFFF), _SVNS if tdx else st.none()),
        _TIMES,
        _STATUS,
        _ADVISORIES,
    )
    identity = st.builds(
        TdxModuleIdentity,
        st.text(max_size=8),
        bytes_of(min_size=48, max_size=48),
        bytes_of(min_size=8, max_size=8),
        bytes_of(min_size=8, max_size=8),
        _IDENTITY_LEVELS,
    )
    module = st.builds(
        TdxModule,
        bytes_of(min_size=48, max_size=48),
        bytes_of(min_size=8, max_size=8),
        bytes_of(min_size=8, max_size=8),
    )
    return TcbInfo(
        id="TDX" if tdx else "SGX",
        version=draw(st.integers(0, 255)),
        issue_date=draw(_TIMES),
        next_update=draw(_TIMES),
        fmspc=draw(bytes_of(min_size=6, max_size=6)),
        pce_id=draw(bytes_of(min_size=2, max_size=2)),
        tcb_type=draw(st.integers(0, 2**32 - 1)),
        tcb_evaluation_data_number=draw(st.integers(0, 2**32 - 1)),
        tcb_levels=tuple(draw(st.lists(level, max_size=3))),
        tdx_module=draw(st.none() | module) if tdx else None,
        tdx_module_identities=tuple(draw(st.lists(identity, max_size=2))) if tdx else (),
    )


QE_IDENTITIES = st.builds(
    QeIdentity,
    id=st.text(max_size=6),
    version=st.integers(0, 255),
    issue_date=_TIMES,
    next_update=_TIMES,
    tcb_evaluation_data_number=st.integers(0, 2**32 - 1),
    miscselect=st.integers(0, 2**32 - 1),
    miscselect_mask=st.integers(0, 2**32 - 1),
    attributes=st.binary(min_size=16, max_size=16),
    attributes_mask=st.binary(min_size=16, max_size=16),
    mr_signer=st.binary(min_size=32, max_size=32),
    isv_prod_id=st.integers(0, 0xFFFF),
    tcb_levels=_IDENTITY_LEVELS,
)


@FUZZ
@given(info=tcb_infos())
def test_generated_tcb_info_round_trips(info: TcbInfo) -> None:
    assert parse_tcb_info(info.to_json()) == info


@FUZZ
@given(identity=QE_IDENTITIES)
def test_generated_qe_identity_round_trips(identity: QeIdentity) -> None:
    assert parse_qe_identity(identity.to_json()) == identity
