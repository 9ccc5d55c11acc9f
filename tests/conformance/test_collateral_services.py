"""Collateral from Intel PCS, AMD KDS and the NVIDIA RIM service, served by a local HTTP server on 127.0.0.1
at the real URL paths with fixture files: fetched, verified, cached, then used from the cache alone."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from cchet.attest import formats
from cchet.attest.collateral import CollateralCache, CollateralSource, ServiceUrls, UrllibFetcher
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import default_options
from cchet.cli import main
from tests.conftest import fixture_path

GO = "go_tdx_guest/"
GPU = "nvidia_attestation_sdk/unit_testdata/sample_attestation_data/gpu/"
VCEK_QUERY = "blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68"  # go-sev-guest's VCEK URL for attestation.bin


def _routes() -> dict[str, tuple[bytes, dict[str, str]]]:
    def read(relative: str) -> bytes:
        return fixture_path(relative).read_bytes()

    def chain(relative: str) -> str:
        return urllib.parse.quote(read(relative).decode())

    report = formats.parse(read("go_sev_guest/attestation.bin"))
    assert isinstance(report, SnpReport)
    rim = read("nvtrust/local_gpu_verifier_samples/1010_0200_882_96005E0001_PROD.swidtag")
    return {
        "/tdx/certification/v4/tcb?fmspc=50806F000000": (
            read(GO + "sample_tcbInfo_response"),
            {"TCB-Info-Issuer-Chain": chain(GO + "tcbInfoIssuerChain.pem")},
        ),
        "/tdx/certification/v4/qe/identity": (
            read(GO + "sample_qeIdentity_response"),
            {"SGX-Enclave-Identity-Issuer-Chain": chain(GO + "qeIdentityIssuerChain.pem")},
        ),
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der": (
            read(GO + "pckcrl"),
            {"SGX-PCK-CRL-Issuer-Chain": chain(GO + "pckCrlIssuerChain.pem")},
        ),
        "/IntelSGXRootCA.der": (read(GO + "rootcrl.der"), {}),
        "/vcek/v1/Milan/cert_chain": (read("go_sev_guest/milan.testcer"), {}),
        f"/vcek/v1/Milan/{report.chip_id.hex()}?{VCEK_QUERY}": (read("go_sev_guest/vcek.testcer"), {}),
        "/v1/rim/NV_GPU_VBIOS_1010_0200_882_96005E0001": (
            json.dumps({"id": "NV_GPU_VBIOS_1010_0200_882_96005E0001", "rim": base64.b64encode(rim).decode()}).encode(),
            {},
        ),
    }


class _Server:
    def __init__(self) -> None:
        routes = _routes()
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body, headers = routes.get(self.path, (b"not found", {}))
                self.send_response(200 if self.path in routes else 404)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.urls = ServiceUrls(
            intel_pcs=base, intel_root_crl=f"{base}/IntelSGXRootCA.der", amd_kds=base, nvidia_rim_service=base
        )
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(fixtures: Path) -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def checks(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


def test_intel_collateral_is_fetched_verified_and_cached(server: _Server, tmp_path: Path) -> None:
    quote = formats.parse(fixture_path(GO + "tdx_prod_quote_SPR_E4.dat").read_bytes())
    assert isinstance(quote, Quote)
    cache = CollateralCache(tmp_path)
    now = dt.datetime(2023, 7, 1, 1, tzinfo=dt.UTC)
    fetching = default_options(now=now, collateral=CollateralSource(cache, UrllibFetcher(timeout=5), server.urls))
    _, failures = verify_quote_device(quote, fetching)
    assert checks(failures) == {"intel.tcb_level"}  # upstream's verdict on the unmodified sample collateral
    assert len(server.requests) == 4
    offline = default_options(now=now, collateral=CollateralSource(cache))
    _, again = verify_quote_device(quote, offline)
    assert list(again) == list(failures) and len(server.requests) == 4
    assert [e.kind for e in cache.entries()] == ["intel"]


def test_amd_chain_and_vcek_from_kds(server: _Server, tmp_path: Path) -> None:
    report = formats.parse(fixture_path("go_sev_guest/attestation.bin").read_bytes())
    assert isinstance(report, SnpReport)
    source = CollateralSource(CollateralCache(tmp_path), UrllibFetcher(timeout=5), server.urls)
    options = default_options(now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), collateral=source).replace(
        amd_product="Milan"
    )
    _, failures = verify_snp_device(report, b"", options)
    assert f"/vcek/v1/Milan/{report.chip_id.hex()}?{VCEK_QUERY}" in server.requests
    # the CRL was asked for and not served: a fetch failure is reported, never taken as "no revocation"
    assert "/vcek/v1/Milan/crl" in server.requests
    assert [f.check for f in failures] == ["amd.certificates_missing"]  # type: ignore[attr-defined]
    assert "/vcek/v1/Milan/crl" in failures[0] and "404" in failures[0]
    assert {e.kind for e in CollateralCache(tmp_path).entries()} == {"amd-chain", "amd-vcek"}


def test_nvidia_rim_from_the_rim_service(server: _Server, tmp_path: Path) -> None:
    r = formats.parse(fixture_path(GPU + "hopperAttestationReport.txt").read_bytes())
    assert isinstance(r, SpdmReport)
    source = CollateralSource(CollateralCache(tmp_path), UrllibFetcher(timeout=5), server.urls)
    device, failures = verify_gpu_device(
        r,
        fixture_path(GPU + "hopperCertChain.txt").read_bytes(),
        default_options(now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), collateral=source),
    )
    assert failures == [] and device.rim_versions == ("96.00.5E.00.01",)
    assert "/v1/rim/NV_GPU_DRIVER_GH100_535.86.09" in server.requests  # asked; not served: not compared
    assert device.measurements == "not compared"


def test_cli_fetch_and_status(server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    u = server.urls
    code = main(
        [
            "collateral",
            "fetch",
            str(fixture_path(GO + "tdx_prod_quote_SPR_E4.dat")),
            "--cache",
            str(cache),
            "--intel-pcs",
            u.intel_pcs,
            "--intel-root-crl",
            u.intel_root_crl,
            "--amd-kds",
            u.amd_kds,
            "--nvidia-rim",
            u.nvidia_rim_service,
        ]
    )
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    assert main(["collateral", "status", "--cache", str(cache), "--at", "2023-06-20T00:00:00Z"]) == 0
    assert main(["collateral", "status", "--cache", str(cache), "--at", "2023-07-05T00:00:00Z"]) == 1
    captured = capsys.readouterr()
    assert "expiring" in captured.out and "warning" in captured.err
    assert main(["collateral", "status", "--cache", str(cache), "--at", "2023-08-01T00:00:00Z"]) == 1
    assert "expired" in capsys.readouterr().out
    code = main(
        [
            "verify",
            str(fixture_path(GO + "tdx_prod_quote_SPR_E4.dat")),
            "--collateral",
            str(cache),
            "--at",
            "2023-07-01T01:00:00Z",
        ]
    )
    assert code == 1 and "no TCB level matches" in capsys.readouterr().out


def test_a_missing_service_means_missing_collateral(tmp_path: Path) -> None:
    quote = formats.parse(fixture_path(GO + "tdx_prod_quote_SPR_E4.dat").read_bytes())
    assert isinstance(quote, Quote)
    dead = ServiceUrls(
        intel_pcs="http://127.0.0.1:9", intel_root_crl="http://127.0.0.1:9/x", amd_kds="http://127.0.0.1:9"
    )
    source = CollateralSource(CollateralCache(tmp_path), UrllibFetcher(timeout=2), dead)
    _, failures = verify_quote_device(
        quote, default_options(now=dt.datetime(2023, 7, 1, 1, tzinfo=dt.UTC), collateral=source)
    )
    assert checks(failures) == {"intel.collateral_missing"}
