"""The check-to-test table (docs/verification-checks.md): for every verification check, simulator-built
evidence in which that check, and only that check, fails.

Each case asserts that the set of failed checks is exactly ``{check}``, so deleting the check (or making it
unable to fail) fails its case; the clean baselines assert that the same evidence without the one change
verifies with no failure at all, so no case passes because of an unrelated failure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import OPAQUE_FWID, OpaqueField, SpdmReport
from cchet.attest.rawsig import raw_from_der
from cchet.attest.simulate import SimulatedAuthority, simulated_collateral
from cchet.attest.simulate.ccel import simulate_event_log
from cchet.attest.simulate.composite import simulate_composite
from cchet.attest.simulate.dcap import simulate_tdx_quote
from cchet.attest.simulate.rim import SimulatedRimSigner, simulate_rim
from cchet.attest.simulate.snp import encode_genoa_tcb, simulate_snp_report
from cchet.attest.simulate.spdm import SIM_DRIVER_VERSION, SIM_VBIOS_VERSION, simulate_spdm_report
from cchet.attest.simulate.verifier import simulated_anchors
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.checks import CHECKS
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import TrustAnchor, VerifyOptions, default_options
from tests.attest.conftest import NOW
from tests.conftest import REPO

Failures = list[str]


@dataclasses.dataclass
class Provider:
    """Collateral the cases hand the verifier (an in-memory CollateralProvider)."""

    amd_crl_der: bytes | None = None
    rims: Mapping[str, bytes] = dataclasses.field(default_factory=dict)

    def intel(self, quote: object, now: dt.datetime) -> None:
        return None

    def amd_chain(self, product: str, key: str, now: dt.datetime) -> None:
        return None

    def amd_vcek(self, report: object, product: str, now: dt.datetime) -> None:
        return None

    def amd_crl(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        return self.amd_crl_der

    def nvidia_rim(self, rim_id: str, now: dt.datetime) -> bytes | None:
        return self.rims.get(rim_id)


@dataclasses.dataclass
class World:
    authority: SimulatedAuthority
    other: SimulatedAuthority
    rim_signer: SimulatedRimSigner

    def options(
        self,
        *,
        collateral: Mapping[str, str] | None = None,
        provider: Provider | None = None,
        rims: tuple[bytes, ...] = (),
        anchors_of: SimulatedAuthority | None = None,
        **changes: object,
    ) -> VerifyOptions:
        anchors = (
            *simulated_anchors(anchors_of or self.authority),
            TrustAnchor("nvidia-rim", self.rim_signer.root_der(), simulated=True),
        )
        return default_options(
            now=NOW,
            anchors=anchors,
            intel_collateral=lambda _q: collateral,
            collateral=provider or Provider(),
            rims=rims,
        ).replace(**changes)


@pytest.fixture(scope="module")
def world(authority: SimulatedAuthority, tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(
        authority, SimulatedAuthority.open(tmp_path_factory.mktemp("other") / "a"), SimulatedRimSigner.create()
    )


# Intel ---------------------------------------------------------------------------------------------------


def _tdx(w: World) -> tuple[Quote, dict[str, str]]:
    q = simulate_tdx_quote(w.authority, report_data=bytes(range(64)))
    return q, simulated_collateral(w.authority, q, now=NOW)


def _resign(
    w: World,
    col: dict[str, str],
    name: str,
    edit: Callable[[dict[str, object]], None],
    *,
    chain: tuple[str, ...] = ("intel_tcb_signing", "intel_root"),
) -> dict[str, str]:
    """``col`` with collateral ``name`` edited and signed by the key of ``chain[0]``, that chain its issuer
    chain."""
    doc = json.loads(col[name])
    edit(doc)
    text = json.dumps(doc, separators=(",", ":"))
    sig = raw_from_der(w.authority.sign(chain[0], text.encode()), 32).hex()
    return {**col, name: text, f"{name}_signature": sig, f"{name}_issuer_chain": w.authority.pem(*chain).decode()}


def _crl(w: World, issuer: str, *, revoke: int | None = None, key: str | None = None) -> bytes:
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(w.authority.certs[issuer].subject)
        .last_update(NOW - dt.timedelta(days=1))
        .next_update(NOW + dt.timedelta(days=30))
    )
    if revoke is not None:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoke).revocation_date(NOW - dt.timedelta(hours=1)).build()
        )
    signer = w.authority.keys[key or issuer]
    algo = hashes.SHA384() if signer.curve.key_size >= 384 else hashes.SHA256()
    return b.sign(signer, algo).public_bytes(serialization.Encoding.DER)


def intel(w: World, change: str) -> Failures:
    q, col = _tdx(w)
    kw: dict[str, object] = {}
    opts: dict[str, object] = {}
    qe = q.signature.qe
    if change == "intel.quote_signature":
        q = dataclasses.replace(q, body=dataclasses.replace(q.body, report_data=bytes(64)))  # type: ignore[type-var]
    elif change == "intel.qe_report_signature":
        report = dataclasses.replace(qe.qe_report, mr_enclave=bytes(32))
        q = dataclasses.replace(
            q, signature=dataclasses.replace(q.signature, qe=dataclasses.replace(qe, qe_report=report))
        )
    elif change == "intel.qe_binding":
        q = dataclasses.replace(
            q, signature=dataclasses.replace(q.signature, qe=dataclasses.replace(qe, qe_auth_data=bytes(32)))
        )
    elif change == "intel.pck_chain":
        opts["anchors_of"] = w.other
    elif change == "intel.pck_revoked":
        col["pck_crl"] = _crl(w, "intel_pck_ca", revoke=w.authority.certs["intel_pck"].serial_number).hex()
    elif change == "intel.crl":
        col["pck_crl"] = _crl(w, "intel_pck_ca", key="intel_tcb_signing").hex()
    elif change == "intel.collateral_missing":
        col = None  # type: ignore[assignment]
    elif change == "intel.tcb_signer":  # the PCK key chains to the root too, but is no TCB signer
        col = _resign(w, col, "tcb_info", lambda d: None, chain=("intel_pck", "intel_pck_ca", "intel_root"))
    elif change == "intel.tcb_info_chain":  # signed by another authority's TCB signer, chained to its root
        col = _resign(dataclasses.replace(w, authority=w.other), col, "tcb_info", lambda d: None)
    elif change == "intel.tcb_info_signature":
        col["tcb_info"] = col["tcb_info"] + " "
    elif change == "intel.tcb_info_validity":
        col = _resign(w, col, "tcb_info", lambda d: d.update(nextUpdate="2026-05-01T00:00:00Z"))
    elif change == "intel.tcb_info_platform":
        col = _resign(w, col, "tcb_info", lambda d: d.update(fmspc="00906ED50001"))
    elif change == "intel.qe_identity_chain":  # signed by another authority's TCB signer, chained to its root
        col = _resign(dataclasses.replace(w, authority=w.other), col, "qe_identity", lambda d: None)
    elif change == "intel.qe_identity_signature":
        col["qe_identity"] = " " + col["qe_identity"]
    elif change == "intel.qe_identity_validity":
        col = _resign(w, col, "qe_identity", lambda d: d.update(issueDate="2026-07-01T00:00:00Z"))
    elif change == "intel.qe_identity":
        col = _resign(w, col, "qe_identity", lambda d: d.update(isvprodid=7))
    elif change == "intel.tdx_module":
        col = _resign(w, col, "tcb_info", lambda d: d["tdxModuleIdentities"][0].update(mrsigner="11" * 48))  # type: ignore[index]
    elif change == "intel.tcb_level":
        col = _resign(w, col, "tcb_info", lambda d: d["tcbLevels"][0]["tcb"].update(pcesvn=99))  # type: ignore[index]
    elif change == "intel.tcb_revoked":
        col = simulated_collateral(w.authority, q, now=NOW, tcb_status="Revoked")
    elif change == "intel.event_log":
        ev = simulate_composite(w.authority, "tdx", report_data=bytes(64), cpu={"events": [(0, b"kernel")]})
        assert isinstance(ev.cpu.report, Quote)
        q, col = ev.cpu.report, simulated_collateral(w.authority, ev.cpu.report, now=NOW)
        kw["event_log"] = simulate_event_log([(0, b"another kernel")])[0]
    elif change == "intel.nonce":
        kw["expected_report_data"] = bytes(64)
    elif change != "none":
        raise AssertionError(change)
    return verify_quote_device(q, w.options(collateral=col, **opts), **kw)[1]  # type: ignore[arg-type]


# AMD -----------------------------------------------------------------------------------------------------


def _resign_snp(w: World, report: SnpReport, **changes: object) -> SnpReport:
    unsigned = dataclasses.replace(report, **changes)  # type: ignore[arg-type]
    sig = raw_from_der(w.authority.sign("amd_vcek", unsigned.signed_bytes()), 72, byteorder="little")
    return dataclasses.replace(unsigned, signature_r=sig[:72], signature_s=sig[72:])


def amd(w: World, change: str) -> Failures:
    report, certs = simulate_snp_report(w.authority, report_data=bytes(range(64)))
    provider = Provider(amd_crl_der=_crl(w, "amd_ark"))
    opts: dict[str, object] = {}
    kw: dict[str, object] = {}
    if change == "amd.certificates_missing":
        certs = b""
    elif change == "amd.chain":
        opts["anchors_of"] = w.other
    elif change == "amd.report_signature":
        report = dataclasses.replace(report, report_data=bytes(64))
    elif change == "amd.revoked":
        provider.amd_crl_der = _crl(w, "amd_ark", revoke=w.authority.certs["amd_ask"].serial_number)
    elif change == "amd.crl":
        provider.amd_crl_der = _crl(w, "amd_ark", key="amd_ask")
    elif change == "amd.reported_tcb":
        other = w.authority.issue_vcek((9, 9, 9, 9)).public_bytes(serialization.Encoding.PEM)
        certs = other + w.authority.pem("amd_ask", "amd_ark")
    elif change == "amd.chip_id":
        report = _resign_snp(w, report, chip_id=bytes(64))
    elif change == "amd.tcb_order":
        report = _resign_snp(w, report, committed_tcb=encode_genoa_tcb((0, 0, 0, 0)))
    elif change == "amd.product":
        opts["amd_stepping"] = 1
    elif change == "amd.nonce":
        kw["expected_report_data"] = bytes(64)
    elif change != "none":
        raise AssertionError(change)
    return verify_snp_device(report, certs, w.options(provider=provider, **opts), **kw)[1]  # type: ignore[arg-type]


# NVIDIA --------------------------------------------------------------------------------------------------


def _rims(w: World, report: SpdmReport, **kw: object) -> tuple[bytes, bytes]:
    m = report.measurements()
    driver = simulate_rim(w.rim_signer, version=SIM_DRIVER_VERSION, measurements={i: m[i + 1] for i in range(32)}, **kw)  # type: ignore[arg-type]
    vbios = simulate_rim(w.rim_signer, version=SIM_VBIOS_VERSION, measurements={i: m[i + 1] for i in range(32, 64)})
    return driver, vbios


def nvidia(w: World, change: str) -> Failures:
    nonce = bytes(range(32))
    report, certs = simulate_spdm_report(w.authority, nonce=nonce)
    driver, vbios = _rims(w, report)
    provider = Provider()
    opts: dict[str, object] = {}
    kw: dict[str, object] = {}
    if change == "nvidia.chain":
        opts["anchors_of"] = w.other
        opts["rims"] = (driver, vbios)
    elif change == "nvidia.spdm_signature":
        request = dataclasses.replace(report.request, slot_id=1)
        report = dataclasses.replace(report, request=request)
    elif change == "nvidia.fwid":
        opaque = tuple(
            OpaqueField(OPAQUE_FWID, bytes(48)) if f.field_type == OPAQUE_FWID else f for f in report.response.opaque
        )
        unsigned = dataclasses.replace(report.response, opaque=opaque, signature=b"")
        sig = raw_from_der(w.authority.sign("nvidia_leaf", report.request.to_bytes() + unsigned.unsigned_bytes()), 48)
        report = dataclasses.replace(report, response=dataclasses.replace(unsigned, signature=sig))
    elif change == "nvidia.nonce":
        kw["expected_nonce"] = bytes(32)
    elif change == "nvidia.rim_signature":
        m = report.measurements()
        driver = simulate_rim(
            w.rim_signer,
            version=SIM_DRIVER_VERSION,
            measurements={i: m[i + 1] for i in range(32)},
            tampered={0: bytes(48)},
        )
    elif change == "nvidia.rim_chain":
        driver = _rims(dataclasses.replace(w, rim_signer=SimulatedRimSigner.create()), report)[0]
    elif change == "nvidia.rim_version":
        chip = "GH100"  # the simulated device leaf's common name says GH100
        provider.rims = {
            f"NV_GPU_DRIVER_{chip}_{SIM_DRIVER_VERSION}": simulate_rim(w.rim_signer, version="1.2.3", measurements={})
        }
        driver = b""
    elif change == "nvidia.measurements":
        m = report.measurements()
        driver = simulate_rim(
            w.rim_signer,
            version=SIM_DRIVER_VERSION,
            measurements={i: (m[i + 1] if i else bytes(48)) for i in range(32)},
        )
    elif change != "none":
        raise AssertionError(change)
    opts.setdefault("rims", tuple(r for r in (driver, vbios) if r))
    return verify_gpu_device(report, certs, w.options(provider=provider, **opts), **kw)[1]  # type: ignore[arg-type]


VERIFY = {"intel": intel, "amd": amd, "nvidia": nvidia}


def failed(failures: Failures) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


@pytest.mark.parametrize("vendor", sorted(VERIFY))
def test_clean_baseline_has_no_failure(world: World, vendor: str) -> None:
    assert VERIFY[vendor](world, "none") == []


def test_clean_gpu_baseline_matches_its_rims(world: World) -> None:
    report, certs = simulate_spdm_report(world.authority, nonce=bytes(32))
    device, failures = verify_gpu_device(report, certs, world.options(rims=_rims(world, report)))
    assert failures == [] and device.measurements == "match"


BUILT_IN = sorted(c for c in CHECKS if c.split(".", maxsplit=1)[0] in VERIFY)
"""The built-in vendors' checks; each TEE family's cases live beside its tests (``tests/attest/tees/``)."""


@pytest.mark.parametrize("check", BUILT_IN)
def test_only_this_check_fails(world: World, check: str) -> None:
    failures = VERIFY[check.split(".", maxsplit=1)[0]](world, check)
    assert failed(failures) == {check}, failures
    with pytest.raises(CHECKS[check].error):
        raise_failures(failures)


def _table() -> dict[str, list[str]]:
    text = (REPO / "docs" / "verification-checks.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([a-z]+\.[a-z_]+)`\s*\|", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in line.strip("|").split("|")]
    return rows


def test_the_docs_table_lists_every_check_with_its_error_and_test() -> None:
    rows = _table()
    assert set(rows) == set(CHECKS)
    for check, cells in rows.items():
        assert f"`{CHECKS[check].error.__name__}`" in cells, check
        m = re.fullmatch(r"`(tests/[\w/]+\.py)::test_only_this_check_fails\[([\w.]+)\]`", cells[-1])
        assert m and m.group(2) == check, (check, cells[-1])
        assert "def test_only_this_check_fails(" in (REPO / m.group(1)).read_text(), check
        assert (m.group(1) == "tests/attest/test_check_table.py") == (check in BUILT_IN), check


def test_docs_path_exists() -> None:
    assert Path(REPO / "docs" / "verification-checks.md").is_file()


def test_a_rim_for_another_chip_fails_rim_version(world: World) -> None:
    report, certs = simulate_spdm_report(world.authority, nonce=bytes(32))
    m = report.measurements()
    driver = simulate_rim(
        world.rim_signer, version=SIM_DRIVER_VERSION, measurements={i: m[i + 1] for i in range(32)}, product="GB100"
    )
    vbios = _rims(world, report)[1]
    _, failures = verify_gpu_device(report, certs, world.options(rims=(driver, vbios)))
    assert failed(failures) == {"nvidia.rim_version"} and "GB100" in failures[0]
