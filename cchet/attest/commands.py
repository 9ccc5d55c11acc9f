"""``cchet attest --simulate`` and ``cchet policy from-evidence``.

``cchet attest --simulate tdx|snp|sgx[+gpu|+Ngpu]`` makes SIMULATED evidence in the real formats, bound to a
fresh nonce, then verifies and appraises it exactly as a broker would (under a policy that allows
simulation) and prints the result. ``--out FILE`` writes the composite evidence (``cchet-evidence/v1``
JSON) to FILE and, beside it, the raw CPU report (``FILE.cpu.bin``), the simulated roots
(``FILE.roots.pem``) and, for quotes, dcap-qvl collateral (``FILE.collateral.json``).

``cchet policy from-evidence EVIDENCE... -o policy.toml`` pins the CPU measurements and GPU RIM ids of
known-good evidence. It verifies nothing: give it evidence you already trust.

``cchet verify FILE`` verifies real evidence against the pinned vendor roots and judges it under the default
policy (or ``--policy FILE``, or none with ``--verify-only``): exit 0 when it verifies and the policy passes,
1 with a one-line reason and the full list otherwise, 2 for usage errors (:mod:`cchet.attest.verify.verdict`).

``cchet collateral fetch EVIDENCE...`` fills the local collateral cache from Intel PCS, AMD KDS, the
NVIDIA RIM service and Hygon's KDS for the evidence given; ``cchet collateral status`` lists what is cached and
warns about what expires soon.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cchet.attest.tees import EXTRA, is_extra, tee, tees

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from cchet.attest.collateral import CollateralCache, CollateralSource
    from cchet.attest.formats.dcap import Quote
    from cchet.attest.formats.snp import SnpReport
    from cchet.attest.verify.options import CollateralProvider, TrustAnchor

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

    verify = sub.add_parser("verify", help="verify real evidence against the pinned vendor roots")
    verify.add_argument("file", type=Path, help="evidence: a quote, an SNP report, an SPDM report or composite JSON")
    verify.add_argument(
        "--kind",
        choices=("auto", "tdx", "sgx", "snp", "spdm", *EXTRA),
        default="auto",
        help="the evidence format, as cchet.attest.formats.parse names it (spdm: an NVIDIA GPU report)",
    )
    verify.add_argument(
        "--certs", type=Path, action="append", default=[], help="a leaf, a chain file or a folder (repeatable)"
    )
    verify.add_argument(
        "--collateral",
        type=Path,
        help="a collateral cache folder, Intel collateral JSON, an AMD CRL, or Arm CCA endorsements (tastore/JWK/PEM)",
    )
    verify.add_argument("--rims", type=Path, action="append", default=[], help="a signed RIM file or a folder of them")
    verify.add_argument("--at", help="verification time, ISO 8601 (2025-07-19T10:00:34Z) or Unix seconds")
    verify.add_argument("--nonce", help="expected report data (CPU, 64 bytes) or SPDM nonce (GPU, 32 bytes), hex")
    mode = verify.add_mutually_exclusive_group()
    mode.add_argument("--policy", type=Path, help="appraise under this policy file instead of the default policy")
    mode.add_argument("--verify-only", action="store_true", help="signatures, chains, collateral, nonce; no policy")
    verify.add_argument("--json", action="store_true", help="print claims, TCB statuses and every failure as JSON")
    verify.set_defaults(run=_verify)

    collateral = sub.add_parser("collateral", help="fill and inspect the local collateral cache")
    actions = collateral.add_subparsers(dest="collateral_command", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="fetch the collateral this evidence needs into the cache")
    fetch.add_argument("evidence", nargs="+", type=Path)
    fetch.add_argument("--certs", type=Path, action="append", default=[], help="certificates for lone reports")
    fetch.add_argument("--cache", type=Path, help="cache folder (default $CCHET_COLLATERAL_DIR or ~/.cache/...)")
    fetch.add_argument("--intel-pcs", help="Intel PCS base URL (default the public service)")
    fetch.add_argument("--intel-root-crl", help="Intel SGX root CRL URL")
    fetch.add_argument("--amd-kds", help="AMD KDS base URL")
    fetch.add_argument("--nvidia-rim", help="NVIDIA RIM service base URL")
    fetch.add_argument("--hygon-kds", help="Hygon KDS base URL (HSK/CEK by chip serial, the HRK)")
    fetch.add_argument("--at", help="refetch what is no longer current at this time (default now)")
    fetch.set_defaults(run=_collateral_fetch)
    status = actions.add_parser("status", help="list cached collateral and what expires soon")
    status.add_argument("--cache", type=Path)
    status.add_argument("--at", help="judge expiry at this time (default now)")
    status.add_argument("--warn-days", type=float, default=7.0, help="warn when expiring within this many days")
    status.set_defaults(run=_collateral_status)


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
            tee_kinds=(kind,),
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


_USAGE = 2


def _time(text: str | None) -> dt.datetime | None:
    """``--at``: ISO 8601 (a trailing Z is UTC; a naive time is refused) or Unix seconds."""
    if text is None:
        return None
    if text.isdigit():
        return dt.datetime.fromtimestamp(int(text), dt.UTC)
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("--at needs a time zone (e.g. 2025-07-19T10:00:34Z)")
    return t


def _read_certs(paths: list[Path], kind: str = "") -> bytes:
    """PEM of every X.509 certificate under ``paths`` (files or folders), put in chain order; for a TEE family
    whose roots are not X.509 (Hygon's, Arm CCA's), the files' bytes back to back, which its verifier parses."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from cchet.attest.formats.certchain import der_to_pem
    from cchet.attest.verify.amd_certs import load_amd_certificates
    from cchet.attest.verify.chain_order import order_chain
    from cchet.attest.verify.options import RAW_ROOT_VENDORS

    files = []
    for path in paths:
        files += sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    if is_extra(kind) and set(tee(kind).vendors) & set(RAW_ROOT_VENDORS):
        return b"".join(f.read_bytes() for f in files)
    certs = []
    for f in files:
        data = f.read_bytes()
        certs += load_amd_certificates(data if b"-----BEGIN" in data else der_to_pem(data))
    return b"".join(c.public_bytes(Encoding.PEM) for c in order_chain(certs))


def _read_rims(paths: list[Path]) -> tuple[bytes, ...]:
    out = []
    for path in paths:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        out += [f.read_bytes() for f in files]
    return tuple(out)


class _FileCollateral:
    """``--collateral FILE``: Intel collateral JSON or an AMD CRL, in front of the default cache."""

    def __init__(self, path: Path, fallback: CollateralSource) -> None:
        data = path.read_bytes()
        self._intel: dict[str, str] | None = json.loads(data) if data.lstrip().startswith(b"{") else None
        self._crl = None if self._intel is not None else data
        self._fallback = fallback

    def intel(self, quote: Quote, now: dt.datetime) -> Mapping[str, str] | None:
        return self._intel if self._intel is not None else self._fallback.intel(quote, now)

    def amd_chain(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        return self._fallback.amd_chain(product, key, now)

    def amd_vcek(self, report: SnpReport, product: str, now: dt.datetime) -> bytes | None:
        return self._fallback.amd_vcek(report, product, now)

    def amd_crl(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        return self._crl if self._crl is not None else self._fallback.amd_crl(product, key, now)

    def nvidia_rim(self, rim_id: str, now: dt.datetime) -> bytes | None:
        return self._fallback.nvidia_rim(rim_id, now)

    def hygon_hsk_cek(self, serial: str, now: dt.datetime) -> bytes | None:
        return self._fallback.hygon_hsk_cek(serial, now)

    def hygon_hrk(self, now: dt.datetime) -> bytes | None:
        return self._fallback.hygon_hrk(now)


def _family_anchors(data: bytes) -> tuple[TrustAnchor, ...]:
    """The trust anchors a TEE family finds in a ``--collateral FILE`` (an Arm CCA tastore, CPAK JWK or PEM
    public key), or ``()``; ``ValueError`` when a family recognises the file but it is malformed."""
    for family in tees():
        found = family.anchors_from_collateral(data)
        if found:
            return found
    return ()


def _usage(message: str) -> int:
    print(f"cchet verify: error: {message}", file=sys.stderr)
    return _USAGE


def _verify(args: argparse.Namespace) -> int:
    from cchet.attest.collateral import CollateralCache, CollateralSource
    from cchet.attest.evidence import CompositeEvidence
    from cchet.attest.formats import parse
    from cchet.attest.formats.dcap import Quote
    from cchet.attest.formats.snp import SnpReport
    from cchet.attest.formats.spdm import SpdmReport
    from cchet.attest.policy import Policy
    from cchet.attest.verify.options import default_options, pinned_anchors
    from cchet.attest.verify.verdict import judge
    from cchet.errors import EvidenceFormatError

    try:
        at = _time(args.at)
        nonce = bytes.fromhex(args.nonce) if args.nonce is not None else None
    except ValueError as e:
        return _usage(str(e))
    try:
        evidence = parse(args.file.read_bytes(), args.kind)
    except OSError as e:
        return _usage(str(e))
    except EvidenceFormatError as e:
        print(f"FAILED: evidence does not parse: {e}")
        return 1
    if not isinstance(evidence, Quote | SnpReport | SpdmReport | CompositeEvidence) and not is_extra(
        getattr(evidence, "kind", "")
    ):
        return _usage(f"{args.file} holds {type(evidence).__name__}, not evidence to verify")
    if nonce is not None and not is_extra(getattr(evidence, "kind", "")):  # a family's report checks its own
        want = 32 if isinstance(evidence, SpdmReport) else 64
        if len(nonce) != want:
            return _usage(f"--nonce must be {want} bytes for this evidence, got {len(nonce)}")
    try:
        certs = _read_certs(args.certs, getattr(evidence, "kind", ""))
        rims = _read_rims(args.rims)
        policy = Policy.from_file(args.policy) if args.policy is not None else None
    except (OSError, ValueError, EvidenceFormatError) as e:
        return _usage(str(e))
    cache = CollateralSource.default()
    collateral: CollateralProvider = cache
    anchors: tuple[TrustAnchor, ...] = ()
    if args.collateral is not None:
        if args.collateral.is_dir():
            collateral = CollateralSource(CollateralCache(args.collateral))
        elif args.collateral.is_file():
            try:
                anchors = _family_anchors(args.collateral.read_bytes())
            except (OSError, ValueError) as e:
                return _usage(f"--collateral {args.collateral}: {e}")
            if not anchors:
                collateral = _FileCollateral(args.collateral, cache)
        else:
            return _usage(f"--collateral {args.collateral}: no such file or folder")
    options = default_options(now=at, collateral=collateral, rims=rims, anchors=(*pinned_anchors(), *anchors))
    try:
        verdict = judge(evidence, options, certificates=certs, nonce=nonce, policy=policy, verify_only=args.verify_only)
    except ValueError as e:
        return _usage(str(e))
    except EvidenceFormatError as e:
        print(f"FAILED: evidence does not parse: {e}")
        return 1
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2, sort_keys=True))
    else:
        print(("OK: " if verdict.ok else "FAILED: ") + verdict.reason())
        for d in verdict.devices:
            status = f" TCB {d.tcb_status} {list(d.advisory_ids)}" if d.tcb_status else ""
            rims_ = f" measurements {d.measurements}" if d.measurements else ""
            print(f"  {d.device} ({d.kind}): root {d.anchor[:16] or 'none'}{status}{rims_}")
        for f in verdict.failures:
            print(f"  - {f}")
        for v in verdict.violations:
            print(f"  - {v}")
        for n in verdict.notes:
            print(f"  note: {n}")
    return 0 if verdict.ok else 1


def _cache(path: Path | None) -> CollateralCache:
    from cchet.attest.collateral import CollateralCache, default_cache_dir

    return CollateralCache(path or default_cache_dir())


def _fetched(path: Path, what: str, get: Callable[[], object]) -> bool:
    """Run ``get`` (a collateral source lookup that fills the cache), print what came of it; True when it got
    something."""
    from cchet.attest.collateral.fetcher import FetchError

    try:
        got = get() is not None
    except FetchError as e:
        print(f"{path}: {what} NOT available: {e}")
        return False
    print(f"{path}: {what} {'cached' if got else 'NOT available (the service has none)'}")
    return got


def _collateral_fetch(args: argparse.Namespace) -> int:
    """Fill the cache with what each piece of evidence needs, straight from the collateral source (nothing is
    verified here; ``cchet verify`` does that), and say what could not be had and why."""
    from functools import partial

    from cchet.attest.claims import gpu_rim_ids
    from cchet.attest.collateral import CollateralSource, ServiceUrls, UrllibFetcher
    from cchet.attest.collateral.source import valid_hygon_serial
    from cchet.attest.evidence import CompositeEvidence, GpuEvidence
    from cchet.attest.formats import parse
    from cchet.attest.formats.dcap import Quote
    from cchet.attest.formats.snp import SnpReport
    from cchet.attest.formats.spdm import SpdmReport
    from cchet.attest.verify.amd_certs import load_amd_certificates
    from cchet.attest.verify.snp import snp_product

    base = ServiceUrls()
    urls = ServiceUrls(
        intel_pcs=args.intel_pcs or base.intel_pcs,
        intel_root_crl=args.intel_root_crl or base.intel_root_crl,
        amd_kds=args.amd_kds or base.amd_kds,
        nvidia_rim_service=args.nvidia_rim or base.nvidia_rim_service,
        hygon_kds=args.hygon_kds or base.hygon_kds,
    )
    cache = _cache(args.cache)
    source = CollateralSource(cache, UrllibFetcher(), urls)
    try:
        now = _time(args.at) or dt.datetime.now(dt.UTC)
    except ValueError as e:
        print(f"cchet collateral fetch: error: {e}", file=sys.stderr)
        return _USAGE
    certs = _read_certs(args.certs)
    missing = 0
    for path in args.evidence:
        ev = parse(path.read_bytes())
        cpu = ev.cpu.report if isinstance(ev, CompositeEvidence) else ev
        cpu = getattr(cpu, "vendor_report", cpu)  # an Azure vTPM CVM's: its SNP report or TD quote
        kind = getattr(cpu, "kind", "")
        if kind == "csv":
            serial: str = getattr(cpu, "serial_number", "")
            if valid_hygon_serial(serial):
                what = f"Hygon HSK/CEK of chip {serial}"
                missing += not _fetched(path, what, partial(source.hygon_hsk_cek, serial, now))
            else:
                print(f"{path}: Hygon HSK/CEK NOT available: the report's serial {serial!r} cannot name a chip")
                missing += 1
            missing += not _fetched(path, "Hygon Root Key", partial(source.hygon_hrk, now))
        elif is_extra(kind):
            print(f"{path}: {kind} evidence needs no collateral from a service (its roots come with the options)")
        elif isinstance(cpu, Quote):
            missing += not _fetched(path, "Intel collateral", partial(source.intel, cpu, now))
        elif isinstance(cpu, SnpReport):
            chain = ev.cpu.certificates if isinstance(ev, CompositeEvidence) else certs
            have = load_amd_certificates(chain) if chain else []
            product = snp_product(cpu, have[0] if have else None)
            key = cpu.signing_key
            if product is None or key not in ("vcek", "vlek"):
                print(
                    f"{path}: AMD collateral NOT available: the report names no product (pass its chain with --certs)"
                )
                missing += 1
            else:
                missing += not _fetched(
                    path, f"AMD {product} {key} chain", partial(source.amd_chain, product, key, now)
                )
                missing += not _fetched(path, f"AMD {product} CRL", partial(source.amd_crl, product, key, now))
                if key == "vcek":
                    missing += not _fetched(path, "AMD VCEK", partial(source.amd_vcek, cpu, product, now))
        gpus = list(ev.gpus) if isinstance(ev, CompositeEvidence) else []
        if isinstance(ev, SpdmReport):
            gpus.append(GpuEvidence(0, ev, certs))
        for g in gpus:
            ids = gpu_rim_ids(g)
            if not ids:
                print(f"{path}: gpu{g.index} RIMs NOT available: no RIM id for its chip and versions")
                missing += 1
            for rim_id in ids:
                missing += not _fetched(path, f"gpu{g.index} RIM {rim_id}", partial(source.nvidia_rim, rim_id, now))
    print(f"cache: {cache.root}")
    return 1 if missing else 0


def _collateral_status(args: argparse.Namespace) -> int:
    from cchet.attest.collateral.expiry import NEVER

    try:
        now = _time(args.at) or dt.datetime.now(dt.UTC)
    except ValueError as e:
        print(f"cchet collateral status: error: {e}", file=sys.stderr)
        return _USAGE
    cache = _cache(args.cache)
    warn = dt.timedelta(days=args.warn_days)
    entries = cache.entries()
    print(f"cache: {cache.root} ({len(entries)} item(s))")
    bad = 0
    for entry in entries:
        state = entry.state(now, warn)
        until = "never" if entry.expires == NEVER else entry.expires.isoformat() if entry.expires else "?"
        print(f"  {state:10} {entry.kind:10} {entry.key}  (until {until})")
        if state != "ok":
            bad += 1
            print(f"cchet: warning: {entry.kind} {entry.key} is {state} (until {until})", file=sys.stderr)
    return 1 if bad else 0
