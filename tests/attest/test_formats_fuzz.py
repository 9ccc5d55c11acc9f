"""Parsers raise nothing but EvidenceFormatError on random bytes and on mutated real fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest import formats
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
    import json

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
