"""trustee's JSON evidence is recognised without ``--kind``: ``formats.parse`` and ``cchet verify`` take each
fixture for its family's kind, while cchet's own composite documents and other JSON stay composite (and fail
as composite evidence, naming the field)."""

from __future__ import annotations

import json

import pytest

from cchet.attest import formats
from cchet.attest.evidence import CompositeEvidence
from cchet.attest.simulate import SimulatedAuthority, simulate_composite
from cchet.cli import main
from cchet.errors import EvidenceFormatError
from tests.conftest import fixture_path

CASES = [
    ("trustee/az_snp_vtpm/evidence-v0.json", "az-snp"),
    ("trustee/az_snp_vtpm/evidence-v1.json", "az-snp"),
    ("trustee/az_tdx_vtpm/evidence-v0.json", "az-tdx"),
    ("trustee/csv/csv_evidence.json", "csv"),
]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_trustee_json_is_detected_as_its_kind(name: str, kind: str) -> None:
    data = fixture_path(name).read_bytes()
    assert formats.detect_kind(data) == kind
    assert formats.parse(data) == formats.parse(data, kind)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_cchet_verify_needs_no_kind(name: str, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["verify", str(fixture_path(name))])  # fails offline (collateral missing); the kind is what counts here
    assert f"cpu ({kind})" in capsys.readouterr().out


def test_composite_and_other_json_stay_composite(authority: SimulatedAuthority) -> None:
    evidence = simulate_composite(authority, "tdx", report_data=bytes(64))
    assert formats.detect_kind(evidence.to_bytes()) == "composite"
    assert isinstance(formats.parse(evidence.to_bytes()), CompositeEvidence)
    for doc in ({"attestation_report": "00"}, {"hcl_report": "not hex"}, {"report": 1}, {}):
        data = json.dumps(doc).encode()
        assert formats.detect_kind(data) == "composite"
        with pytest.raises(EvidenceFormatError, match="format"):
            formats.parse(data)
