"""Quote v5 with each body type (SGX, TD 1.0, TD 1.5): layout, round trip, and dcap-qvl agreeing."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from cchet.attest.formats import parse
from cchet.attest.formats.dcap import BODY_SGX, BODY_TD10, BODY_TD15, Quote, TdReportBody
from cchet.attest.simulate import SimulatedAuthority, simulate_sgx_quote, simulate_tdx_quote
from cchet.errors import EvidenceFormatError
from tests.conftest import fixture_path


def _as_v5(quote: Quote, body_type: int) -> Quote:
    return dataclasses.replace(
        quote,
        header=dataclasses.replace(quote.header, version=5),
        body_type=body_type,
        signature=dataclasses.replace(quote.signature, wrapped=True),
    )


@pytest.mark.parametrize("kind", ["tdx", "sgx"])
def test_v5_layout_round_trips(authority: SimulatedAuthority, kind: str) -> None:
    rd = bytes(range(64))
    base = (
        simulate_tdx_quote(authority, report_data=rd)
        if kind == "tdx"
        else simulate_sgx_quote(authority, report_data=rd)
    )
    body_type = BODY_TD10 if kind == "tdx" else BODY_SGX
    v5 = _as_v5(base, body_type)
    raw = v5.to_bytes()
    assert struct.unpack_from("<HHI", raw, 0)[0] == 5
    assert struct.unpack_from("<HI", raw, 48) == (body_type, len(base.body.to_bytes()))
    assert raw[54 + len(base.body.to_bytes()) - 64 : 54 + len(base.body.to_bytes())] == rd
    again = parse(raw)
    assert again == v5 and isinstance(again, Quote) and again.kind == kind
    dcap_qvl = pytest.importorskip("dcap_qvl")
    parsed = dcap_qvl.parse_quote(raw)
    assert parsed.header.version == 5 and parsed.report.report_data == rd


def test_v5_td15_fixture_body() -> None:
    quote = parse(fixture_path("go_tdx_guest/quote_v5_sample.dat").read_bytes())
    assert isinstance(quote, Quote) and quote.body_type == BODY_TD15
    assert isinstance(quote.body, TdReportBody) and quote.body.mr_service_td is not None
    assert quote.body.report_data.hex().startswith("945eaacf")


def test_v5_body_size_and_type_are_checked(authority: SimulatedAuthority) -> None:
    raw = bytearray(_as_v5(simulate_tdx_quote(authority, report_data=bytes(64)), BODY_TD10).to_bytes())
    bad_size = bytes(raw[:50]) + struct.pack("<I", 600) + bytes(raw[54:])
    with pytest.raises(EvidenceFormatError) as e:
        parse(bad_size)
    assert e.value.field == "body.size" and e.value.offset == 50
    bad_type = bytes(raw[:48]) + struct.pack("<H", BODY_SGX) + bytes(raw[50:])
    with pytest.raises(EvidenceFormatError) as e:
        parse(bad_type)
    assert e.value.field in ("body.size", "body.type")
