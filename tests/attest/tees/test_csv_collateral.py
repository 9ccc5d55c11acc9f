"""Hygon collateral: HSK/CEK (by chip serial) and the HRK from the collateral cache or an injected fetcher, never
the network on its own; what is missing is named with where to get it; given them, the full chain verifies."""

from __future__ import annotations

import hashlib
import http.server
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cchet.attest.collateral import CollateralCache, CollateralSource, FetchError, Response, ServiceUrls
from cchet.attest.collateral.expiry import NEVER
from cchet.attest.collateral.source import valid_hygon_serial
from cchet.attest.simulate import SimulatedAuthority
from cchet.attest.tees.csv.collateral import hygon_source
from cchet.attest.tees.csv.simulate import SimulatedHygon, simulate_csv_report
from cchet.attest.tees.csv.verify import verify_csv_device
from cchet.attest.verify.options import TrustAnchor
from cchet.cli import main
from tests.attest.tees.test_csv import REPORT_DATA, failed, options


@dataclass
class FakeKds:
    """An injected fetcher serving Hygon's KDS paths from memory, counting requests."""

    answers: dict[str, bytes]
    asked: list[str] = field(default_factory=list)

    def get(self, url: str) -> Response:
        self.asked.append(url)
        if url not in self.answers:
            raise FetchError(f"{url}: HTTP 404")
        return Response(self.answers[url])


@pytest.fixture
def hygon(authority: SimulatedAuthority) -> SimulatedHygon:
    return SimulatedHygon.open(authority)


def test_given_hsk_cek_from_the_kds_the_full_chain_verifies_and_is_cached(
    authority: SimulatedAuthority, hygon: SimulatedHygon, tmp_path: Path
) -> None:
    report, certificates = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    assert certificates == b""
    kds = FakeKds({ServiceUrls().hygon_hsk_cek(hygon.serial): hygon.hsk_cek()})
    source = CollateralSource(CollateralCache(tmp_path / "cache"), kds)
    device, failures = verify_csv_device(report, b"", options(authority, collateral=source))
    assert failures == [] and device.simulated and device.anchor
    assert kds.asked == [f"https://cert.hygon.cn/hsk_cek?snumber={hygon.serial}"]
    cached = tmp_path / "cache" / "hygon" / f"hsk_cek-{hygon.serial}.cert"
    assert cached.read_bytes() == hygon.hsk_cek()
    # the cache alone now suffices: no fetcher, nothing fetched
    offline = CollateralSource(CollateralCache(tmp_path / "cache"))
    assert verify_csv_device(report, b"", options(authority, collateral=offline))[1] == []


def test_hsk_cek_given_as_the_kds_file_verify(authority: SimulatedAuthority, hygon: SimulatedHygon) -> None:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    assert verify_csv_device(report, hygon.hsk_cek(), options(authority))[1] == []


def test_missing_hsk_cek_are_named_with_where_to_get_them(
    authority: SimulatedAuthority, hygon: SimulatedHygon, tmp_path: Path
) -> None:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    offline = CollateralSource(CollateralCache(tmp_path / "empty"))
    device, failures = verify_csv_device(report, b"", options(authority, collateral=offline))
    assert failed(failures) == {"csv.certificates_missing"} and device.anchor == ""
    message = failures[0]
    assert f"chip '{hygon.serial}'" in message
    assert f"https://cert.hygon.cn/hsk_cek?snumber={hygon.serial}" in message
    assert str(tmp_path / "empty" / "hygon" / f"hsk_cek-{hygon.serial}.cert") in message
    assert "no fetcher" in message


def test_a_failed_fetch_is_reported_not_swallowed(authority: SimulatedAuthority, tmp_path: Path) -> None:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    source = CollateralSource(CollateralCache(tmp_path / "c"), FakeKds({}))
    _, failures = verify_csv_device(report, b"", options(authority, collateral=source))
    assert failed(failures) == {"csv.certificates_missing"} and "HTTP 404" in failures[0]


def test_a_kds_answer_of_the_wrong_size_is_refused_and_not_cached(
    authority: SimulatedAuthority, hygon: SimulatedHygon, tmp_path: Path
) -> None:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    source = CollateralSource(
        CollateralCache(tmp_path / "c"), FakeKds({ServiceUrls().hygon_hsk_cek(hygon.serial): b"<html>"})
    )
    _, failures = verify_csv_device(report, b"", options(authority, collateral=source))
    assert failed(failures) == {"csv.certificates_missing"} and "expected 2916 bytes" in failures[0]
    assert not (tmp_path / "c" / "hygon").exists()


def test_a_cached_file_that_does_not_decode_is_named(
    authority: SimulatedAuthority, hygon: SimulatedHygon, tmp_path: Path
) -> None:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    (tmp_path / "hygon").mkdir()
    (tmp_path / "hygon" / f"hsk_cek-{hygon.serial}.cert").write_bytes(b"\x07" * 2916)
    source = CollateralSource(CollateralCache(tmp_path))
    _, failures = verify_csv_device(report, b"", options(authority, collateral=source))
    assert failed(failures) == {"csv.certificates_missing"} and "do not decode" in failures[0]


def test_cached_hsk_cek_of_another_chip_fail_the_chain(
    authority: SimulatedAuthority, hygon: SimulatedHygon, tmp_path: Path
) -> None:
    other = SimulatedHygon.open(SimulatedAuthority.open(tmp_path / "other"))
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    (tmp_path / "c" / "hygon").mkdir(parents=True)
    (tmp_path / "c" / "hygon" / f"hsk_cek-{hygon.serial}.cert").write_bytes(other.hsk_cek())
    source = CollateralSource(CollateralCache(tmp_path / "c"))
    _, failures = verify_csv_device(report, b"", options(authority, collateral=source))
    assert failed(failures) == {"csv.chain"}


def test_the_hrk_comes_from_the_collateral_for_a_root_pinned_by_fingerprint(
    authority: SimulatedAuthority, hygon: SimulatedHygon, tmp_path: Path
) -> None:
    report, certificates = simulate_csv_report(authority, report_data=REPORT_DATA)
    fingerprint = hashlib.sha256(hygon.hrk.to_bytes()).hexdigest()
    pinned = TrustAnchor("hygon", sha256=fingerprint, name="pinned HRK")
    kds = FakeKds({"https://cert.hygon.cn/hrk": hygon.hrk.to_bytes()})
    source = CollateralSource(CollateralCache(tmp_path), kds)
    device, failures = verify_csv_device(report, certificates, options(authority, anchors=(pinned,), collateral=source))
    assert failures == [] and device.anchor == fingerprint
    assert (tmp_path / "hygon" / "hrk.cert").read_bytes() == hygon.hrk.to_bytes()
    # an HRK that does not hash to the pin is not a root: it is reported missing
    other = SimulatedHygon.open(SimulatedAuthority.open(tmp_path / "other"))
    (tmp_path / "hygon" / "hrk.cert").write_bytes(other.hrk.to_bytes())
    offline = CollateralSource(CollateralCache(tmp_path))
    _, failures = verify_csv_device(report, certificates, options(authority, anchors=(pinned,), collateral=offline))
    assert failed(failures) == {"csv.certificates_missing"}
    assert "Hygon Root Key certificate is missing" in failures[0] and fingerprint in failures[0]
    assert "https://cert.hygon.cn/hrk" in failures[0]


def test_a_collateral_source_is_the_hygon_provider(tmp_path: Path) -> None:
    source = CollateralSource(CollateralCache(tmp_path), FakeKds({}))
    assert hygon_source(source) is source
    assert hygon_source(None) is None and hygon_source(object()) is None


def test_the_kds_base_url_is_configurable(authority: SimulatedAuthority, hygon: SimulatedHygon, tmp_path: Path) -> None:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    urls = ServiceUrls(hygon_kds="http://127.0.0.1:9/kds")
    source = CollateralSource(CollateralCache(tmp_path), FakeKds({}), urls)
    _, failures = verify_csv_device(report, b"", options(authority, collateral=source))
    assert f"http://127.0.0.1:9/kds/hsk_cek?snumber={hygon.serial}" in failures[0]


def test_cached_hygon_certificates_never_expire_and_are_listed(hygon: SimulatedHygon, tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    cache.put("hygon", f"hsk_cek-{hygon.serial}", hygon.hsk_cek())
    cache.put("hygon", "hrk", hygon.hrk.to_bytes())
    (tmp_path / "hygon" / "junk.cert").write_bytes(b"not a certificate")
    entries = {e.key: e.expires for e in cache.entries()}
    assert entries == {f"hsk_cek-{hygon.serial}": NEVER, "hrk": NEVER, "junk": None}


@pytest.mark.parametrize("serial", ["", "../../etc/passwd", "a/b", "x" * 65, "KPA 649"])
def test_a_serial_that_cannot_name_a_chip_is_refused(serial: str, tmp_path: Path) -> None:
    assert not valid_hygon_serial(serial)
    with pytest.raises(ValueError, match="not a Hygon chip serial"):
        CollateralSource(CollateralCache(tmp_path)).hygon_hsk_cek(serial, None)  # type: ignore[arg-type]
    assert valid_hygon_serial("KPA64911240507") and valid_hygon_serial("SIMULATED-0A1B2C3D")


def test_cli_fetches_hygon_collateral_over_http(
    authority: SimulatedAuthority, hygon: SimulatedHygon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cchet collateral fetch`` gets a CSV report's HSK/CEK (by its serial) and the HRK from a KDS on loopback,
    at the real paths; ``status`` lists them as never expiring; the verifier then needs no network."""
    routes = {f"/hsk_cek?snumber={hygon.serial}": hygon.hsk_cek(), "/hrk": hygon.hrk.to_bytes()}
    asked: list[str] = []

    class Kds(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = routes.get(self.path, b"not found")
            self.send_response(200 if self.path in routes else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    evidence = tmp_path / "csv.bin"
    evidence.write_bytes(report.to_bytes())
    cache = tmp_path / "cache"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Kds)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        code = main(["collateral", "fetch", str(evidence), "--cache", str(cache), "--hygon-kds", base])
    finally:
        httpd.shutdown()
        httpd.server_close()
    out = capsys.readouterr().out
    assert code == 0, out
    assert asked == [f"/hsk_cek?snumber={hygon.serial}", "/hrk"]
    assert f"Hygon HSK/CEK of chip {hygon.serial} cached" in out and "Hygon Root Key cached" in out
    assert main(["collateral", "status", "--cache", str(cache)]) == 0
    status = capsys.readouterr().out
    assert f"hsk_cek-{hygon.serial}  (until never)" in status and "hrk  (until never)" in status
    offline = CollateralSource(CollateralCache(cache))
    assert verify_csv_device(report, b"", options(authority, collateral=offline))[1] == []
    # a KDS that is not there: exit 1, each piece named
    code = main(["collateral", "fetch", str(evidence), "--cache", str(tmp_path / "c2"), "--hygon-kds", base])
    out = capsys.readouterr().out
    assert code == 1 and "Hygon HSK/CEK" in out and "NOT available" in out
