"""Attestation cost: parse, verify and appraise per evidence kind, and Intel quote verification side by side
with dcap-qvl in the same process.

Evidence is simulated (real formats and signatures, simulated roots), so the benchmark runs anywhere; when
``$CCHET_FIXTURES`` points at the shared fixtures, dcap-qvl's real TDX v4 quote and collateral are measured
too. Intel rows: ``ours/cold`` empties :mod:`cchet.attest.verify.memo` before every call (imports done,
another quote verified before, this collateral not yet verified in the process); ``ours/warm`` verifies
with the collateral already verified once (memoised signatures and certificates; every time-dependent check
still runs); ``dcap-qvl`` is ``dcap_qvl.verify_with_root_ca`` on the same quote, collateral object and root.
``ratio`` is our time over dcap-qvl's. Goals (issue 7): cold <= 2x, warm <= 1x.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cchet.bench.timing import interleaved_medians, machine_info

__all__ = ["run", "table"]

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def _kind_rows(authority: Any, repeats: int) -> list[dict[str, Any]]:
    from cchet.attest.appraise import appraise
    from cchet.attest.binding import Binding
    from cchet.attest.evidence import decode_composite
    from cchet.attest.formats.dcap import Quote
    from cchet.attest.policy import Policy
    from cchet.attest.simulate import simulate_composite, simulated_collateral
    from cchet.attest.simulate.verifier import simulation_options
    from cchet.attest.verify.vendor import VendorVerifier

    binding = Binding(
        broker_id=hashlib.sha256(b"bench").digest(),
        kem_id=0x20,
        kdf_id=1,
        aead_id=3,
        public_key=bytes(32),
        request_digest=hashlib.sha256(b"bench request").digest(),
    )
    nonce = hashlib.sha256(b"bench nonce").digest()
    rows = []
    for kind, gpus in (("tdx", 0), ("sgx", 0), ("snp", 0), ("tdx", 1)):
        evidence = simulate_composite(authority, kind, nonce=nonce, binding=binding, gpus=gpus)
        report = evidence.cpu.report
        # fixed collateral: simulation_options would sign fresh collateral on every call
        collateral = simulated_collateral(authority, report, now=NOW) if isinstance(report, Quote) else None
        options = simulation_options(authority, now=NOW, collateral=collateral).replace(verifier=VendorVerifier())
        wire = evidence.to_bytes()
        policy = Policy(allow_simulation=True, tee_kinds=(kind,), gpu="required" if gpus else "optional")
        verifier = VendorVerifier()
        fns: dict[str, Callable[[], object]] = {
            "parse": functools.partial(decode_composite, wire),
            "verify": functools.partial(verifier.check, evidence, options),
            "appraise": functools.partial(appraise, wire, policy, nonce=nonce, binding=binding, options=options),
        }
        result = appraise(wire, policy, nonce=nonce, binding=binding, options=options)
        if not result.accepted:
            raise RuntimeError(f"benchmark evidence {kind}+{gpus}gpu was not accepted: {result.reasons}")
        med = interleaved_medians(fns, repeats=repeats)
        label = kind + (f"+{gpus}gpu" if gpus else "")
        rows += [{"evidence": label, "step": step, "seconds": s} for step, s in med.items()]
    return rows


def _intel_pair(
    name: str,
    quote: Any,
    raw: bytes,
    collateral: dict[str, str],
    root_der: bytes,
    *,
    now: dt.datetime,
    simulated: bool,
    repeats: int,
) -> list[dict[str, Any]]:
    import dcap_qvl

    from cchet.attest.collateral import CollateralSource
    from cchet.attest.verify import memo
    from cchet.attest.verify.intel import verify_quote_device
    from cchet.attest.verify.options import TrustAnchor, default_options

    options = default_options(
        now=now,
        anchors=(TrustAnchor("intel", root_der, simulated=simulated),),
        intel_collateral=lambda _q: collateral,
        collateral=CollateralSource(),
    )
    qvl_collateral = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral))
    stamp = int(now.timestamp())
    device, failures = verify_quote_device(quote, options)
    theirs = dcap_qvl.verify_with_root_ca(raw, qvl_collateral, root_der, stamp)
    if failures or theirs.status != device.tcb_status:
        raise RuntimeError(f"{name}: verifiers disagree: {failures} / {device.tcb_status} vs {theirs.status}")

    def cold() -> None:
        memo.clear()
        verify_quote_device(quote, options)

    med = interleaved_medians(
        {
            "ours/cold": cold,
            "ours/warm": lambda: verify_quote_device(quote, options),
            "dcap-qvl": lambda: dcap_qvl.verify_with_root_ca(raw, qvl_collateral, root_der, stamp),
        },
        repeats=repeats,
    )
    base = med["dcap-qvl"]
    return [
        {"quote": name, "verifier": k, "seconds": v, "ratio_to_dcap_qvl": v / base, "tcb_status": device.tcb_status}
        for k, v in med.items()
    ]


def _intel_rows(authority: Any, repeats: int) -> list[dict[str, Any]]:
    from cchet.attest.formats import parse
    from cchet.attest.simulate import simulated_collateral
    from cchet.attest.simulate.dcap import simulate_sgx_quote, simulate_tdx_quote

    rows = []
    for name, quote in (
        ("simulated TDX v4", simulate_tdx_quote(authority, report_data=bytes(64))),
        ("simulated SGX v3", simulate_sgx_quote(authority, report_data=bytes(64))),
    ):
        collateral = simulated_collateral(authority, quote, now=NOW)
        rows += _intel_pair(
            name,
            quote,
            quote.to_bytes(),
            collateral,
            authority.der("intel_root"),
            now=NOW,
            simulated=True,
            repeats=repeats,
        )
    root = os.environ.get("CCHET_FIXTURES")
    if root and (Path(root) / "dcap_qvl" / "tdx_quote").is_file():
        base = Path(root) / "dcap_qvl"
        raw = (base / "tdx_quote").read_bytes()
        collateral = json.loads((base / "tdx_quote_collateral.json").read_text())
        now = dt.datetime(2025, 7, 19, 10, 0, 34, tzinfo=dt.UTC)
        rows += _intel_pair(
            "real TDX v4 (dcap-qvl fixture)",
            parse(raw),
            raw,
            collateral,
            (base / "TrustedRootCA.der").read_bytes(),
            now=now,
            simulated=False,
            repeats=repeats,
        )
    return rows


def run(quick: bool = False, repeats: int = 7) -> dict[str, Any]:
    """Measures every row (``quick`` skips the per-kind rows); returns the result document."""
    from cchet.attest.simulate import SimulatedAuthority

    with tempfile.TemporaryDirectory() as tmp:
        authority = SimulatedAuthority.open(Path(tmp) / "authority")
        intel = _intel_rows(authority, repeats)
        kinds = [] if quick else _kind_rows(authority, repeats)
    return {
        "benchmark": "attest",
        "baseline": "dcap_qvl.verify_with_root_ca on the same quote, collateral object and root, same process",
        "method": f"median of {repeats} interleaved samples after a warm-up",
        "goals": {"intel_cold_ratio_max": 2.0, "intel_warm_ratio_max": 1.0},
        "machine": machine_info(),
        "intel": intel,
        "kinds": kinds,
    }


def table(result: dict[str, Any]) -> str:
    """Markdown tables: Intel side by side with dcap-qvl, then parse/verify/appraise per evidence kind."""
    lines = ["| quote | verifier | ms | ratio to dcap-qvl |", "|---|---|---:|---:|"]
    for r in result["intel"]:
        lines.append(f"| {r['quote']} | {r['verifier']} | {r['seconds'] * 1e3:.3f} | {r['ratio_to_dcap_qvl']:.2f} |")
    if result["kinds"]:
        lines += ["", "| evidence | step | ms |", "|---|---|---:|"]
        for r in result["kinds"]:
            lines.append(f"| {r['evidence']} | {r['step']} | {r['seconds'] * 1e3:.3f} |")
    return "\n".join(lines)
