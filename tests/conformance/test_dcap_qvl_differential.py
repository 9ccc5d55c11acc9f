"""Differential against dcap-qvl: the same quotes and collateral must get the same verdict, TCB status and
advisory ids from cchet's verifier and ``dcap_qvl.verify_with_root_ca``.

Cases: every Intel fixture quote (with its collateral at its recorded time, and long after; quotes without
collateral with the dcap-qvl TDX collateral), plus simulator-signed
TDX and SGX quotes whose collateral has randomised TCB levels (SGX and TDX component SVNs, PCE SVN, status,
advisories), QE identity levels and TDX module levels, seeded so each run sees the same cases. A verdict
is ``ERR`` (either side refuses) or ``status + sorted advisories``.
"""

from __future__ import annotations

import collections
import json
import random
from typing import Any

import pytest

from cchet.attest import formats
from cchet.attest.collateral import CollateralSource
from cchet.attest.formats.dcap import Quote
from cchet.attest.simulate import SimulatedAuthority, simulated_collateral
from cchet.attest.simulate.authority import SIM_PCE_SVN, SIM_PCK_COMPONENTS
from cchet.attest.simulate.dcap import simulate_sgx_quote, simulate_tdx_quote
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.options import TrustAnchor, default_options
from tests.conformance.intel_material import at, fixture_json, go_collateral, resign
from tests.conftest import fixture_path

dcap_qvl = pytest.importorskip("dcap_qvl")

NOW = at(2026, 6, 1, 12)
PLATFORM_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
IDENTITY_STATUSES = ("UpToDate", "OutOfDate", "Revoked")
SIMULATED_CASES = 600


def ours(quote: Quote, collateral: dict[str, str], root_der: bytes, now: Any, simulated: bool) -> str:
    anchor = TrustAnchor("intel", root_der, simulated=simulated)
    options = default_options(
        now=now, anchors=(anchor,), intel_collateral=lambda _q: collateral, collateral=CollateralSource()
    )
    device, failures = verify_quote_device(quote, options)
    if failures:
        return "ERR"
    return f"{device.tcb_status} {sorted(device.advisory_ids)}"


def theirs(raw: bytes, collateral: dict[str, str], root_der: bytes, now: Any) -> str:
    try:
        v = dcap_qvl.verify_with_root_ca(
            raw, dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral)), root_der, int(now.timestamp())
        )
    except Exception:
        return "ERR"
    return f"{v.status} {sorted(v.advisory_ids)}"


FIXTURE_CASES = [
    ("dcap_qvl/tdx_quote", "dcap_qvl/tdx_quote_collateral.json", at(2025, 7, 19, 10, 0, 34)),
    ("dcap_qvl/sgx_quote", "dcap_qvl/sgx_quote_collateral.json", at(2025, 7, 19, 10, 1, 17)),
    ("dcap_qvl/tdx_quote_outdated", "dcap_qvl/tdx_quote_outdated_collateral.json", at(2026, 3, 20, 10, 41, 14)),
    ("dcap_qvl/near_quote_hex.txt", "dcap_qvl/near_quote_collateral.json", at(2025, 10, 2, 7, 3, 50)),
    ("dcap_qvl/tdx_quote", "dcap_qvl/tdx_quote_collateral.json", at(2025, 8, 30)),
    ("dcap_qvl/sgx_quote", "dcap_qvl/sgx_quote_collateral.json", at(2053, 7, 1)),
    ("go_tdx_guest/tdx_prod_quote_SPR_E4.dat", "go:sample_tcbInfo_response", at(2023, 7, 1, 1)),
    ("go_tdx_guest/quote_v5_sample.dat", "go:sample_tcbinfo_response_v5", at(2026, 2, 3, 1)),
    # quotes that come without collateral, judged with the dcap-qvl TDX collateral (same FMSPC B0C06F000000
    # for the first two: their TEE_TCB_SVN 05.. matches no level; another FMSPC for the COS quote)
    ("dcap_qvl/quote-from-tappd.hex", "dcap_qvl/tdx_quote_collateral.json", at(2025, 7, 19, 10, 0, 34)),
    ("dcap_qvl/tdx-quote.hex", "dcap_qvl/tdx_quote_collateral.json", at(2025, 7, 19, 10, 0, 34)),
    ("go_tdx_guest/ccel/cos-113-tdx-quote.dat", "dcap_qvl/tdx_quote_collateral.json", at(2025, 7, 19, 10, 0, 34)),
]


@pytest.mark.parametrize(("quote_file", "collateral_file", "now"), FIXTURE_CASES)
def test_fixture_verdicts_agree(quote_file: str, collateral_file: str, now: Any, report: list[str]) -> None:
    raw = formats.serialize(formats.parse(fixture_path(quote_file).read_bytes()))
    quote = formats.parse(raw)
    assert isinstance(quote, Quote)
    if collateral_file.startswith("go:"):
        collateral = go_collateral(collateral_file[3:])
    else:
        collateral = fixture_json(collateral_file)
    root = fixture_path("dcap_qvl/TrustedRootCA.der").read_bytes()
    a, b = ours(quote, collateral, root, now, False), theirs(raw, collateral, root, now)
    assert a == b, (quote_file, now)
    report.append(f"dcap-qvl differential, fixture {quote_file} at {now:%Y-%m-%d}: {a}")


def _components(rng: random.Random, base: tuple[int, ...] | bytes) -> list[dict[str, int]]:
    out = list(base)
    for _ in range(rng.randint(0, 2)):
        i = rng.randrange(len(out))
        out[i] = max(0, out[i] + rng.choice((-1, 1, 2)))
    return [{"svn": v} for v in out]


def _advisories(rng: random.Random) -> list[str]:
    return sorted(
        rng.sample(["INTEL-SA-00289", "INTEL-SA-00615", "INTEL-SA-00837", "INTEL-SA-00960"], rng.randint(0, 2))
    )


def _level(rng: random.Random, status: str, tcb: dict[str, Any]) -> dict[str, Any]:
    level: dict[str, Any] = {"tcb": tcb, "tcbDate": "2026-01-01T00:00:00Z", "tcbStatus": status}
    advisories = _advisories(rng) if status != "UpToDate" else []
    if advisories:
        level["advisoryIDs"] = advisories
    return level


def _case(rng: random.Random, authority: SimulatedAuthority) -> tuple[Quote, dict[str, str]]:
    tdx = rng.random() < 0.6
    if tdx:
        svn = bytearray(bytes.fromhex("04010200000000000000000000000000"))
        svn[0] = rng.randint(2, 6)
        svn[1] = rng.choice((0, 1, 1))  # TDX module version: 0 is judged by the platform level alone
        svn[2] = rng.randint(1, 3)
        quote = simulate_tdx_quote(authority, report_data=bytes(64), tee_tcb_svn=bytes(svn))
    else:
        quote = simulate_sgx_quote(authority, report_data=bytes(64))
    base = simulated_collateral(authority, quote, now=NOW)
    tcb_info = json.loads(base["tcb_info"])
    levels = []
    for _ in range(rng.randint(1, 4)):
        tcb: dict[str, Any] = {
            "sgxtcbcomponents": _components(rng, SIM_PCK_COMPONENTS),
            "pcesvn": SIM_PCE_SVN + rng.choice((-1, 0, 0, 1)),
        }
        if tdx:
            assert isinstance(quote.body.tee_tcb_svn, bytes)  # type: ignore[union-attr]
            tcb["tdxtcbcomponents"] = _components(rng, quote.body.tee_tcb_svn)  # type: ignore[union-attr]
        levels.append(_level(rng, rng.choice(PLATFORM_STATUSES), tcb))
    if rng.random() < 0.6:  # an old level that anything matches
        floor: dict[str, Any] = {"sgxtcbcomponents": [{"svn": 0}] * 16, "pcesvn": 0}
        if tdx:
            floor["tdxtcbcomponents"] = [{"svn": 0}] * 16
        levels.append(_level(rng, rng.choice(PLATFORM_STATUSES[1:]), floor))
    rng.shuffle(levels)
    tcb_info["tcbLevels"] = levels
    if tdx:
        module = tcb_info["tdxModuleIdentities"][0]
        module["tcbLevels"] = [
            _level(rng, rng.choice(IDENTITY_STATUSES), {"isvsvn": svn})
            for svn in sorted(rng.sample(range(7), 2), reverse=True)
        ]
    qe_identity = json.loads(base["qe_identity"])
    qe_identity["tcbLevels"] = [
        _level(rng, rng.choice(IDENTITY_STATUSES), {"isvsvn": svn})
        for svn in sorted(rng.sample(range(7), 2), reverse=True)
    ]
    return quote, resign(authority, base, tcb_info=tcb_info, qe_identity=qe_identity)


def test_simulated_verdicts_agree(authority: SimulatedAuthority, report: list[str]) -> None:
    rng = random.Random(20261126)
    root = authority.der("intel_root")
    counts: collections.Counter[str] = collections.Counter()
    disagreements = []
    for i in range(SIMULATED_CASES):
        quote, collateral = _case(rng, authority)
        a, b = ours(quote, collateral, root, NOW, True), theirs(quote.to_bytes(), collateral, root, NOW)
        counts[a.split(" ")[0]] += 1
        if a != b:
            disagreements.append((i, a, b))
    report.append(f"dcap-qvl differential, {SIMULATED_CASES} simulated cases: {dict(sorted(counts.items()))}")
    assert disagreements == []
    non_uptodate = [k for k in counts if k not in ("UpToDate", "ERR")]
    assert len(non_uptodate) >= 3 and counts["ERR"] > 0 and counts["UpToDate"] > 0
