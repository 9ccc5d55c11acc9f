"""Hygon CSV formats: exact round trips (report wrapper, certificates, bundles, trustee's JSON document, composite
evidence), parsers that raise only EvidenceFormatError on fuzzed input, and a changed byte in a signed part that
never verifies."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest.evidence import decode_composite
from cchet.attest.formats import detect_kind, parse, serialize
from cchet.attest.simulate import SimulatedAuthority, simulate_composite
from cchet.attest.tees import tee
from cchet.attest.tees.csv.certs import (
    CA_CERT_SIZE,
    CSV_CERT_SIZE,
    armor,
    parse_ca_certificate,
    parse_certificates,
    parse_csv_certificate,
)
from cchet.attest.tees.csv.evidence import CsvEvidence, parse_csv_evidence
from cchet.attest.tees.csv.report import REPORT_SIZE, SIGNED_SIZE, CsvReport, parse_csv_report
from cchet.attest.tees.csv.simulate import SimulatedHygon, simulate_csv_report
from cchet.attest.tees.csv.verify import verify_csv_device
from cchet.attest.verify.options import TrustAnchor
from cchet.errors import EvidenceFormatError
from tests.attest.tees.test_csv import failed, options

REPORT_DATA = hashlib.sha512(b"cchet csv formats").digest()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    authority = SimulatedAuthority.open(tmp_path_factory.mktemp("csv-formats") / "authority")
    v1, certs = simulate_csv_report(authority, report_data=REPORT_DATA, version=1)
    v2, _ = simulate_csv_report(authority, report_data=REPORT_DATA, version=2)
    hygon = SimulatedHygon.open(authority)
    doc = CsvEvidence(v1, hygon.pek, hygon.serial.encode().ljust(64, b"\0"), hygon.hsk, hygon.cek, None)
    return {"authority": authority, "v1": v1, "v2": v2, "certs": certs, "hygon": hygon, "doc": doc}


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_report_round_trip(samples: dict[str, object], name: str) -> None:
    report = samples[name]
    assert isinstance(report, CsvReport)
    raw = report.to_bytes()
    assert len(raw) == REPORT_SIZE and detect_kind(raw) == "csv"
    assert parse(raw) == report and serialize(parse(raw)) == raw
    assert parse(raw.hex().encode(), "csv") == report  # hex text, as other reports are accepted


def test_certificates_and_bundles_round_trip(samples: dict[str, object]) -> None:
    hygon = samples["hygon"]
    assert isinstance(hygon, SimulatedHygon)
    for cert in (hygon.hrk, hygon.hsk):
        assert parse_ca_certificate(cert.to_bytes()) == cert and len(cert.to_bytes()) == CA_CERT_SIZE
    for cert in (hygon.cek, hygon.pek):
        assert parse_csv_certificate(cert.to_bytes()) == cert and len(cert.to_bytes()) == CSV_CERT_SIZE
    chain = (hygon.hrk, hygon.hsk, hygon.cek, hygon.pek)
    raw = b"".join(c.to_bytes() for c in chain)
    assert parse_certificates(raw) == chain
    assert parse_certificates(armor(chain)) == chain
    assert parse_certificates(hygon.hsk_cek()) == (hygon.hsk, hygon.cek)  # the KDS answer


def test_trustee_document_round_trip(samples: dict[str, object]) -> None:
    doc = samples["doc"]
    assert isinstance(doc, CsvEvidence)
    raw = doc.to_bytes()
    assert parse_csv_evidence(raw) == doc and parse(raw, "csv") == doc
    assert json.loads(raw)["cert_chain"]["hsk_cek"]["hsk"]["body"]["preamble"]["data"]["usage"] == 0x13
    without = dataclasses.replace(doc, hsk=None, cek=None, cc_eventlog="AAAA")
    assert parse_csv_evidence(without.to_bytes()) == without
    assert "hsk_cek" not in json.loads(without.to_bytes())["cert_chain"]


def test_trustee_document_verifies_with_its_hsk_cek(samples: dict[str, object]) -> None:
    doc = samples["doc"]
    authority = samples["authority"]
    assert isinstance(doc, CsvEvidence) and isinstance(authority, SimulatedAuthority)
    assert verify_csv_device(doc, b"", options(authority), expected_report_data=REPORT_DATA)[1] == []


def test_composite_round_trip(samples: dict[str, object]) -> None:
    authority = samples["authority"]
    assert isinstance(authority, SimulatedAuthority)
    for version in (1, 2):
        evidence = simulate_composite(authority, "csv", report_data=REPORT_DATA, cpu={"version": version})
        raw = evidence.to_bytes()
        assert decode_composite(raw) == evidence and decode_composite(raw).to_bytes() == raw
        assert b"-----BEGIN HYGON CERTIFICATE-----" in raw


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b[:-1], "report"),
        (lambda b: b"X" + b[1:], "magic"),
        (lambda b: b"ATTESTATION_EXT\0" + (7).to_bytes(4, "little") + b[20:], "flags"),
    ],
)
def test_report_errors_name_the_field(samples: dict[str, object], mutate: object, field: str) -> None:
    report = samples["v2"]
    assert isinstance(report, CsvReport)
    with pytest.raises(EvidenceFormatError) as e:
        parse_csv_report(mutate(report.to_bytes()))  # type: ignore[operator]
    assert e.value.field == field


def test_certificate_errors_name_the_field(samples: dict[str, object]) -> None:
    hygon = samples["hygon"]
    assert isinstance(hygon, SimulatedHygon)
    bad = bytearray(hygon.pek.to_bytes())
    bad[164:166] = (255).to_bytes(2, "little")
    with pytest.raises(EvidenceFormatError) as e:
        parse_csv_certificate(bytes(bad))
    assert e.value.field == "uid_size" and e.value.offset == 164
    with pytest.raises(EvidenceFormatError, match="not a Hygon"):
        parse_certificates(b"\x01" * 900)
    with pytest.raises(EvidenceFormatError, match="more than 8"):
        parse_certificates(hygon.hrk.to_bytes() * 9)
    with pytest.raises(EvidenceFormatError, match="holds 3 bytes"):
        parse_certificates(b"-----BEGIN HYGON CERTIFICATE-----\nAAAA\n-----END HYGON CERTIFICATE-----\n")


def test_document_errors_name_the_json_field(samples: dict[str, object]) -> None:
    doc = samples["doc"]
    assert isinstance(doc, CsvEvidence)
    data = json.loads(doc.to_bytes())
    data["cert_chain"]["pek"]["body"]["data"]["sid"] = [0] * 15
    with pytest.raises(EvidenceFormatError) as e:
        parse_csv_evidence(json.dumps(data).encode())
    assert e.value.field == "csv_evidence.cert_chain.pek.body.data.sid"
    data = json.loads(doc.to_bytes())
    data["extra"] = 1
    with pytest.raises(EvidenceFormatError, match="unknown key"):
        parse_csv_evidence(json.dumps(data).encode())


# -- fuzzing: only EvidenceFormatError ------------------------------------------------------------------------


def _only_format_errors(data: bytes, parser: object) -> None:
    with contextlib.suppress(EvidenceFormatError):
        parser(data)  # type: ignore[operator]


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, REPORT_SIZE - 1), st.integers(1, 255)), max_size=6),
    cut=st.integers(0, REPORT_SIZE),
)
def test_fuzzed_reports_raise_only_format_errors(
    samples: dict[str, object], flips: list[tuple[int, int]], cut: int
) -> None:
    for name in ("v1", "v2"):
        report = samples[name]
        assert isinstance(report, CsvReport)
        data = bytearray(report.to_bytes())
        for at, x in flips:
            data[at] ^= x
        _only_format_errors(bytes(data[:cut]), tee("csv").parse)
        _only_format_errors(bytes(data), tee("csv").parse)


@FUZZ
@given(data=st.binary(max_size=3000))
def test_random_bytes_raise_only_format_errors(samples: dict[str, object], data: bytes) -> None:
    _only_format_errors(data, tee("csv").parse)
    _only_format_errors(data, parse_certificates)
    _only_format_errors(
        b"-----BEGIN HYGON CERTIFICATE-----\n" + data + b"\n-----END HYGON CERTIFICATE-----", parse_certificates
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(path=st.lists(st.text(max_size=12), min_size=1, max_size=5), value=_JSON)
def test_fuzzed_documents_raise_only_format_errors(samples: dict[str, object], path: list[str], value: object) -> None:
    doc = samples["doc"]
    assert isinstance(doc, CsvEvidence)
    data = doc.to_json()
    keys = ["attestation_report", "cert_chain", "serial_number", "cc_eventlog"]
    node: object = data
    for i, step in enumerate(path[:-1]):
        if isinstance(node, dict):
            key = keys[len(step) % len(keys)] if i == 0 else (sorted(node)[len(step) % len(node)] if node else step)
            node = node.get(key)
        elif isinstance(node, list) and node:
            node = node[len(step) % len(node)]
    if isinstance(node, dict):
        node[path[-1] if len(path[-1]) % 2 else (sorted(node)[0] if node else path[-1])] = value
    elif isinstance(node, list) and node:
        node[len(path[-1]) % len(node)] = value
    _only_format_errors(json.dumps(data).encode(), tee("csv").parse)


# -- a changed byte in a signed part never verifies -----------------------------------------------------------


@FUZZ
@given(version=st.sampled_from([1, 2]), at=st.integers(0, 1023), x=st.integers(1, 255))
def test_a_changed_signed_report_byte_never_verifies(samples: dict[str, object], version: int, at: int, x: int) -> None:
    report = samples[f"v{version}"]
    authority = samples["authority"]
    assert isinstance(report, CsvReport) and isinstance(authority, SimulatedAuthority)
    at %= SIGNED_SIZE[version]
    raw = bytearray(report.to_bytes())
    raw[20 + at] ^= x
    changed = parse_csv_report(bytes(raw))
    _, failures = verify_csv_device(changed, samples["certs"], options(authority))  # type: ignore[arg-type]
    assert "csv.report_signature" in failed(failures)


@FUZZ
@given(which=st.sampled_from(["hrk", "hsk", "cek", "pek"]), at=st.integers(0, 2083), x=st.integers(1, 255))
def test_a_changed_certificate_byte_in_a_signed_part_never_verifies(
    samples: dict[str, object], which: str, at: int, x: int
) -> None:
    """Bodies and signatures of every certificate: HRK, HSK and CEK come in the bundle, the PEK in the report; the
    root is pinned by fingerprint (as the real HRK is). The unchanged chain verifies (see below)."""
    hygon, authority, report = samples["hygon"], samples["authority"], samples["v2"]
    assert isinstance(hygon, SimulatedHygon) and isinstance(authority, SimulatedAuthority)
    assert isinstance(report, CsvReport)
    cert = getattr(hygon, which)
    raw = bytearray(cert.to_bytes())
    signed = range(720) if which in ("hrk", "hsk") else [*range(1044), *range(1044 + 8, 1044 + 152)]
    raw[signed[at % len(signed)]] ^= x
    try:
        changed = parse_certificates(bytes(raw))[0]
    except EvidenceFormatError:
        return  # the change made it undecodable: it cannot verify either
    chain = {"hrk": hygon.hrk, "hsk": hygon.hsk, "cek": hygon.cek, which: changed}
    if which == "pek":
        pek_start = 20 + 1168
        whole = report.to_bytes()
        report = parse_csv_report(whole[:pek_start] + changed.to_bytes() + whole[pek_start + 2084 :])
    pinned = TrustAnchor("hygon", sha256=hashlib.sha256(hygon.hrk.to_bytes()).hexdigest(), name="pinned HRK")
    anchors = (pinned,)  # the HRK comes with the bundle and must hash to the pin
    bundle = armor([chain[k] for k in ("hrk", "hsk", "cek")])
    try:
        _, failures = verify_csv_device(report, bundle, options(authority, anchors=anchors))
    except EvidenceFormatError:
        return
    assert failures


def test_the_unchanged_chain_verifies_to_a_root_pinned_by_fingerprint(samples: dict[str, object]) -> None:
    hygon, authority, report = samples["hygon"], samples["authority"], samples["v2"]
    assert isinstance(hygon, SimulatedHygon) and isinstance(authority, SimulatedAuthority)
    assert isinstance(report, CsvReport)
    fingerprint = hashlib.sha256(hygon.hrk.to_bytes()).hexdigest()
    pinned = TrustAnchor("hygon", sha256=fingerprint, name="pinned HRK")
    bundle = armor([hygon.hrk, hygon.hsk, hygon.cek])
    device, failures = verify_csv_device(report, bundle, options(authority, anchors=(pinned,)))
    assert failures == [] and device.anchor == fingerprint and not device.simulated
