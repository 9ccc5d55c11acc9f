"""``cchet attest --simulate`` and ``cchet policy from-evidence``.

``cchet attest --simulate tdx|snp|sgx[+gpu|+Ngpu]`` makes SIMULATED evidence in the real formats, bound to a
fresh nonce, then verifies and appraises it exactly as a broker would (under a policy that allows
simulation) and prints the result. ``--out FILE`` writes the composite evidence (``cchet-evidence/v1``
JSON) to FILE and, beside it, the raw CPU report (``FILE.cpu.bin``), the simulated roots
(``FILE.roots.pem``) and, for quotes, dcap-qvl collateral (``FILE.collateral.json``).

``cchet policy from-evidence EVIDENCE... -o policy.toml`` pins the CPU measurements and GPU RIM ids of
known-good evidence. It verifies nothing: give it evidence you already trust.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    attest = sub.add_parser("attest", help="make, verify and appraise attestation evidence")
    attest.add_argument(
        "--simulate",
        metavar="KIND",
        required=True,
        help="simulated TEE: tdx, snp or sgx, optionally +gpu or +Ngpu (SIMULATED: protects nothing)",
    )
    attest.add_argument("--out", type=Path, help="write the evidence here (and its simulated chain beside it)")
    attest.add_argument("--json", action="store_true", help="print the result as EAR-shaped JSON")
    attest.add_argument("--key-dir", type=Path, help="simulated authority key directory (default: per user)")
    attest.add_argument("--tcb-status", default="UpToDate", help="TCB status the simulated Intel collateral reports")
    attest.add_argument(
        "--policy", type=Path, help="appraise under this policy file instead of one that allows simulation"
    )
    attest.set_defaults(run=_attest)

    policy = sub.add_parser("policy", help="write attestation policies")
    actions = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    fe = actions.add_parser("from-evidence", help="pin the measurements of known-good evidence")
    fe.add_argument("evidence", nargs="+", type=Path, help="evidence files (composite JSON, quotes, reports)")
    fe.add_argument("-o", "--output", required=True, help="policy file to write (.toml), or - for stdout")
    fe.add_argument("--name", default="", help="policy name (part of the policy id the audit log records)")
    fe.add_argument("--allow-simulation", action="store_true", help="accept simulated evidence (testing only)")
    fe.add_argument("--force", action="store_true", help="overwrite an existing policy file")
    fe.set_defaults(run=_from_evidence)


def _attest(args: argparse.Namespace) -> int:
    from cchet.attest.appraise import appraise
    from cchet.attest.binding import Binding
    from cchet.attest.formats.dcap import Quote
    from cchet.attest.policy import Policy
    from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulated_collateral
    from cchet.attest.simulate.attester import parse_kind
    from cchet.attest.simulate.verifier import simulation_options

    kind, gpus = parse_kind(args.simulate)
    authority = SimulatedAuthority.open(args.key_dir)
    now = dt.datetime.now(dt.UTC)
    nonce = os.urandom(32)
    binding = Binding(
        broker_id=hashlib.sha256(b"cchet attest --simulate: local check, no broker").digest(),
        kem_id=0x0020,
        kdf_id=0x0001,
        aead_id=0x0003,
        public_key=os.urandom(32),
        request_digest=hashlib.sha256(b"cchet attest --simulate").digest(),
    )
    evidence = simulate_composite(authority, kind, nonce=nonce, binding=binding, gpus=gpus)
    options = simulation_options(authority, now=now, tcb_status=args.tcb_status)
    policy = (
        Policy.from_file(args.policy)
        if args.policy is not None
        else Policy(
            name="simulate",
            allow_simulation=True,
            gpu="required" if gpus else "optional",
            min_tcb_status="OutOfDateConfigurationNeeded",
        )
    )
    result = appraise(evidence, policy, nonce=nonce, binding=binding, options=options, nonce_issued_at=now)
    if args.out is not None:
        out: Path = args.out
        out.write_bytes(evidence.to_bytes())
        Path(f"{out}.cpu.bin").write_bytes(evidence.cpu.report.to_bytes())
        Path(f"{out}.roots.pem").write_bytes(authority.pem("intel_root", "amd_ark", "nvidia_root"))
        if isinstance(evidence.cpu.report, Quote):
            collateral = simulated_collateral(authority, evidence.cpu.report, now=now, tcb_status=args.tcb_status)
            Path(f"{out}.collateral.json").write_text(json.dumps(collateral, indent=1))
        print(
            f"wrote SIMULATED evidence to {out} (+ .cpu.bin, .roots.pem"
            f"{', .collateral.json' if isinstance(evidence.cpu.report, Quote) else ''})",
            file=sys.stderr,
        )
    print(result.to_json() if args.json else str(result))
    return 0 if result.accepted else 1


def _from_evidence(args: argparse.Namespace) -> int:
    from cchet.attest.formats import parse
    from cchet.attest.reference import is_simulated, reference_policy

    evidence = [parse(Path(path).read_bytes()) for path in args.evidence]
    policy = reference_policy(evidence, name=args.name, allow_simulation=args.allow_simulation)
    if any(is_simulated(e) for e in evidence) and not args.allow_simulation:
        print(
            "cchet: warning: the evidence is SIMULATED; the policy refuses simulated evidence unless "
            "you pass --allow-simulation",
            file=sys.stderr,
        )
    text = policy.to_toml()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        mode = "w" if args.force else "x"
        with open(args.output, mode, encoding="utf-8") as f:
            f.write(text)
        print(f"wrote policy {policy.policy_id} to {args.output}", file=sys.stderr)
    return 0
