"""Hygon CSV conformance with trustee (``trustee/csv``, MANIFEST.md section "Trustee: ... Hygon CSV").

Upstream verdict: ``test_verify_csv_evidence`` -> **verifies**, but only with the chip's HSK and CEK, which the
evidence lacks and trustee downloads from Hygon's KDS (``https://cert.hygon.cn/hsk_cek?snumber=KPA64911240507``).
Offline, cchet verifies everything else -- the fields decode, the report signature by the PEK (SM2/SM3, ID
``HYGON-SSD-PEK``, over the masked bytes [0, 180)), the HRK is the pinned root and its self-signature holds -- and
reports exactly one failure: ``csv.certificates_missing``, naming the serial and the KDS URL. It never reports
success without them (simulated HSK/CEK from a fetcher fail the chain).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest.collateral import CollateralCache, CollateralSource, Response
from cchet.attest.evidence import CompositeEvidence, CpuEvidence
from cchet.attest.formats import parse
from cchet.attest.simulate import SimulatedAuthority
from cchet.attest.tees import tee
from cchet.attest.tees.csv import sm2
from cchet.attest.tees.csv.certs import CaCertificate, parse_certificates
from cchet.attest.tees.csv.evidence import CsvEvidence, parse_csv_evidence
from cchet.attest.tees.csv.report import parse_csv_report
from cchet.attest.tees.csv.simulate import SimulatedHygon
from cchet.attest.tees.csv.verify import chain_problems, report_signature_problems, verify_csv_device
from cchet.attest.verify.failure import check_of
from cchet.attest.verify.options import TrustAnchor, VerifyOptions, default_options, pinned_anchors
from cchet.attest.verify.roots import HYGON_HRK
from cchet.cli import main
from cchet.errors import EvidenceFormatError
from tests.conftest import fixture_path

SERIAL = "KPA64911240507"
KDS_URL = f"https://cert.hygon.cn/hsk_cek?snumber={SERIAL}"


def evidence_bytes() -> bytes:
    return fixture_path("trustee/csv/csv_evidence.json").read_bytes()


def hrk_bytes() -> bytes:
    return fixture_path("trustee/csv/hrk.cert").read_bytes()


def real_options(tmp_path: Path, fetcher: object = None) -> VerifyOptions:
    """The default options (the pinned real roots, the Hygon Root Key among them) over a cache in ``tmp_path``."""
    source = CollateralSource(CollateralCache(tmp_path / "cache"), fetcher)  # type: ignore[arg-type]
    return default_options(collateral=source)


def test_the_hygon_root_is_pinned_by_default() -> None:
    assert TrustAnchor.pinned(HYGON_HRK) in pinned_anchors()


@pytest.fixture
def doc() -> CsvEvidence:
    return parse_csv_evidence(evidence_bytes())


def test_the_document_round_trips_byte_for_byte(doc: CsvEvidence) -> None:
    raw = evidence_bytes()
    assert doc.to_bytes() == raw
    assert parse(raw, "csv") == doc
    composite = CompositeEvidence(CpuEvidence(doc))
    assert parse(composite.to_bytes()) == composite


def test_the_fields_decode_to_the_manifests_values(doc: CsvEvidence) -> None:
    r = doc.report
    assert r.version == 1 and r.magic == bytes(16) and r.flags == 0
    assert doc.serial_number == SERIAL == r.serial_number and len(doc.serial) == 64
    assert r.tee_info.anonce == 0x5DC7D726
    assert r.report_data == bytes(64)
    assert r.user_pubkey_digest == bytes(32) and r.vm_id == bytes(16) and r.vm_version == bytes(16)
    assert r.mnonce.hex() == "ad998a845c45cf30944d1c285629e768"
    assert r.measurement.hex() == "ae2a2cf1f41a485fa37bf9ae92f678783c59fbc79de7b5d237743d58f5538034"
    assert r.policy == 0x45 and not r.debug
    assert r.sig_usage == 0x1002 and r.sig_algo == 4
    pek = doc.pek
    assert (pek.version, pek.firmware, pek.usage, pek.algo, pek.curve) == (1, (1, 3), 0x1002, 4, 3)
    assert pek.distinguishing_id == b"HYGON-SSD-PEK"
    assert [(s.usage, s.algo) for s in pek.slots] == [(0x1004, 4), (0x1001, 4)]
    # the signer block holds the same PEK and serial, in clear (the attester had unmasked it)
    assert not r.signer_masked and r.pek_bytes() == pek.to_bytes() and r.signer.serial == doc.serial
    assert doc.cc_eventlog is not None and len(base64.b64decode(doc.cc_eventlog)) == 77
    assert doc.hsk is None and doc.cek is None


def test_claims_match_trustees(doc: CsvEvidence) -> None:
    claims = tee("csv").claims(doc)
    assert claims["version"] == 1 and claims["serial_number"] == SERIAL
    assert claims["report_data"] == "00" * 64
    assert claims["mnonce"] == "ad998a845c45cf30944d1c285629e768"
    assert claims["measurement"] == "ae2a2cf1f41a485fa37bf9ae92f678783c59fbc79de7b5d237743d58f5538034"
    assert claims["policy"]["nodbg"] and claims["policy"]["es"] and claims["policy"]["csv3"]
    assert not any(claims["policy"][b] for b in ("noks", "nosend", "domain", "csv", "asid_reuse"))
    assert bytes.fromhex(claims["anonce"])[::-1].hex() == "26d7c75d"  # trustee writes the LE bytes
    assert claims["firmware"] == "1.3"


def test_the_hrk_is_the_pinned_root_and_self_signs() -> None:
    raw = hrk_bytes()
    assert len(raw) == 832 and hashlib.sha256(raw).hexdigest() == HYGON_HRK.sha256
    (hrk,) = parse_certificates(raw)
    assert isinstance(hrk, CaCertificate) and hrk.role == "HRK" and hrk.to_bytes() == raw
    assert hrk.distinguishing_id == b"HYGON-SSD-HRK" and hrk.certifying_id == hrk.key_id
    assert sm2.verify(hrk.point, b"HYGON-SSD-HRK", hrk.body(), hrk.signature)
    assert not sm2.verify(hrk.point, sm2.DEFAULT_ID, hrk.body(), hrk.signature)


def test_the_report_signature_verifies_with_the_peks_id(doc: CsvEvidence) -> None:
    assert report_signature_problems(doc.report, doc.pek) == []
    (hrk,) = parse_certificates(hrk_bytes())
    assert isinstance(hrk, CaCertificate)
    assert chain_problems(hrk, None, None, doc.pek) == []  # without HSK/CEK: the HRK's own checks
    other_id = dataclasses.replace(doc.pek, uid_size=16, user_id=sm2.DEFAULT_ID.ljust(254, b"\0"))
    assert report_signature_problems(doc.report, other_id)


def test_offline_the_only_failure_is_the_missing_hsk_cek(doc: CsvEvidence, tmp_path: Path) -> None:
    """Upstream says "verifies" with network access; offline exactly the HSK/CEK are missing."""
    device, failures = verify_csv_device(doc, hrk_bytes(), real_options(tmp_path))
    assert [check_of(f) for f in failures] == ["csv.certificates_missing"]
    assert f"chip '{SERIAL}'" in failures[0] and KDS_URL in failures[0]
    assert device.anchor == "" and not device.simulated
    # the HRK may come from the collateral cache instead of the evidence
    (tmp_path / "cache" / "hygon").mkdir(parents=True)
    (tmp_path / "cache" / "hygon" / "hrk.cert").write_bytes(hrk_bytes())
    _, failures = verify_csv_device(doc, b"", real_options(tmp_path))
    assert [check_of(f) for f in failures] == ["csv.certificates_missing"] and "HSK and CEK" in failures[0]


def test_without_the_hrk_both_are_named(doc: CsvEvidence, tmp_path: Path) -> None:
    _, failures = verify_csv_device(doc, b"", real_options(tmp_path))
    assert [check_of(f) for f in failures] == ["csv.certificates_missing"] * 2
    assert "https://cert.hygon.cn/hrk" in failures[1] and HYGON_HRK.sha256 in failures[1]


def test_hsk_cek_of_another_chip_never_verify(doc: CsvEvidence, tmp_path: Path) -> None:
    simulated = SimulatedHygon.open(SimulatedAuthority.open(tmp_path / "sim"))

    class Kds:
        def get(self, url: str) -> Response:
            assert url == KDS_URL
            return Response(simulated.hsk_cek())

    _, failures = verify_csv_device(doc, hrk_bytes(), real_options(tmp_path, Kds()))
    assert {check_of(f) for f in failures} == {"csv.chain"}
    assert any("HSK's signature by the HRK" in f for f in failures)


def test_the_verifier_never_reports_success_for_the_fixture(doc: CsvEvidence, tmp_path: Path) -> None:
    options = real_options(tmp_path)
    found = options.verifier.check(CompositeEvidence(CpuEvidence(doc, hrk_bytes())), options)  # type: ignore[union-attr]
    assert not found.ok and not found.simulated


_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(at=st.integers(0, 179), x=st.integers(1, 255))
def test_a_changed_byte_of_the_signed_tee_info_never_verifies(
    doc: CsvEvidence, tmp_path: Path, at: int, x: int
) -> None:
    raw = bytearray(doc.report.to_bytes())
    raw[20 + at] ^= x
    changed = dataclasses.replace(doc, report=parse_csv_report(bytes(raw)))
    _, failures = verify_csv_device(changed, hrk_bytes(), real_options(tmp_path))
    assert "csv.report_signature" in {check_of(f) for f in failures}


@_SETTINGS
@given(at=st.integers(0, 719), x=st.integers(1, 255))
def test_a_changed_byte_of_the_hrk_never_verifies(doc: CsvEvidence, tmp_path: Path, at: int, x: int) -> None:
    """Against the pin the changed HRK is no root at all; trusted as it is (an anchor carrying it), its
    self-signature fails."""
    raw = bytearray(hrk_bytes())
    raw[at] ^= x
    try:
        _, failures = verify_csv_device(doc, bytes(raw), real_options(tmp_path))
    except EvidenceFormatError:  # the change left no Hygon certificate to read: evidence that does not parse
        pass
    else:
        assert any("Hygon Root Key certificate is missing" in f for f in failures)
    carried = TrustAnchor("hygon", bytes(raw), name="a changed HRK")
    options = default_options(anchors=(carried,), collateral=real_options(tmp_path).collateral)
    _, failures = verify_csv_device(doc, b"", options)
    checks = {check_of(f) for f in failures}
    assert "csv.chain" in checks or any("does not decode" in f for f in failures)


def test_openssl_agrees_on_the_fixture_signature(doc: CsvEvidence, tmp_path: Path) -> None:
    exe = shutil.which("openssl")
    listed = subprocess.run(
        [exe or "false", "list", "-public-key-algorithms"], capture_output=True, text=True, check=False
    )
    if exe is None or "SM2" not in listed.stdout:
        pytest.skip("no OpenSSL with SM2 here")
    x, y = doc.pek.point
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")
    (tmp_path / "pub.der").write_bytes(spki + x.to_bytes(32, "big") + y.to_bytes(32, "big"))
    (tmp_path / "m").write_bytes(doc.report.signed_bytes())
    r, s = (int.from_bytes(v, "little") for v in (doc.report.tee_info.signature_r, doc.report.tee_info.signature_s))
    ints = b"".join(
        b"\x02" + bytes([len(b)]) + b for b in (v.to_bytes((v.bit_length() + 8) // 8, "big") for v in (r, s))
    )
    (tmp_path / "sig").write_bytes(b"\x30" + bytes([len(ints)]) + ints)
    cmd = [exe, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-keyform", "DER", "-inkey"]
    cmd += [str(tmp_path / "pub.der"), "-in", str(tmp_path / "m"), "-sigfile", str(tmp_path / "sig")]
    done = subprocess.run([*cmd, "-pkeyopt", "distid:HYGON-SSD-PEK"], capture_output=True, text=True, check=False)
    assert "Verified Successfully" in done.stdout


# -- cchet verify ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty default cache and a collateral folder holding the HRK."""
    monkeypatch.setenv("CCHET_COLLATERAL_DIR", str(tmp_path / "default-cache"))
    folder = tmp_path / "collateral"
    (folder / "hygon").mkdir(parents=True)
    (folder / "hygon" / "hrk.cert").write_bytes(hrk_bytes())
    return folder


def test_cchet_verify_says_exactly_what_is_missing(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(fixture_path("trustee/csv/csv_evidence.json"))
    code = main(["verify", path, "--kind", "csv", "--collateral", str(cli), "--verify-only"])
    out = capsys.readouterr().out
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith(f"FAILED: verification failed: the HSK and CEK certificates of chip '{SERIAL}' are missing")
    assert KDS_URL in first
    assert out.count("\n  - ") == 1  # that one failure and nothing else
    code = main(["verify", path, "--kind", "csv", "--collateral", str(cli), "--verify-only", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and not doc["ok"]
    assert [(f["check"], f["error"]) for f in doc["failures"]] == [("csv.certificates_missing", "CollateralError")]
    assert doc["claims"]["cpu"]["serial_number"] == SERIAL and doc["devices"][0]["kind"] == "csv"


def test_cchet_verify_checks_the_nonce(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(fixture_path("trustee/csv/csv_evidence.json"))
    main(["verify", path, "--kind", "csv", "--collateral", str(cli), "--verify-only", "--json", "--nonce", "00" * 64])
    ok = json.loads(capsys.readouterr().out)
    assert [f["check"] for f in ok["failures"]] == ["csv.certificates_missing"]
    main(["verify", path, "--kind", "csv", "--collateral", str(cli), "--verify-only", "--json", "--nonce", "01" * 64])
    bad = json.loads(capsys.readouterr().out)
    assert [f["check"] for f in bad["failures"]] == ["csv.certificates_missing", "csv.nonce"]
    main(["verify", path, "--kind", "csv", "--collateral", str(cli), "--verify-only", "--json", "--nonce", "00" * 32])
    short = json.loads(capsys.readouterr().out)
    assert "csv.nonce" in [f["check"] for f in short["failures"]]  # 32 bytes are not padded to 64


def test_cchet_verify_reads_hygon_certificates_given_with_certs(
    cli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--certs`` passes a Hygon bundle (not X.509) to the CSV verifier as it is: the HRK given there is the root,
    with nothing in the collateral; the default policy (no ``--policy``) accepts the csv kind."""
    hrk = tmp_path / "hrk.cert"
    hrk.write_bytes(hrk_bytes())
    path = str(fixture_path("trustee/csv/csv_evidence.json"))
    code = main(["verify", path, "--kind", "csv", "--certs", str(hrk), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and [f["check"] for f in doc["failures"]] == ["csv.certificates_missing"]
    assert "Hygon Root Key" not in doc["failures"][0]["message"] and not doc["violations"]
    code = main(["verify", path, "--kind", "csv", "--json"])  # without it: the HRK is named missing too
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and [f["check"] for f in doc["failures"]] == ["csv.certificates_missing"] * 2
