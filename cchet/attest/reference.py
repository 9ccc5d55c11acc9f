"""Reference values from known-good evidence: the measurements a policy pins (``cchet policy from-evidence``).

It verifies nothing: give it evidence you already trust (your own build, a node you provisioned). Values of
several pieces of evidence are merged, so a policy can accept each of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cchet.attest.claims import cpu_claims, gpu_rim_ids
from cchet.attest.evidence import CompositeEvidence, CpuEvidence
from cchet.attest.formats.certchain import parse_pem_chain
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.policy import TABLES, Policy
from cchet.attest.tees import is_extra, tee
from cchet.errors import EvidenceFormatError

__all__ = ["PINNED_FIELDS", "is_simulated", "reference_policy", "reference_values"]

PINNED_FIELDS = {
    "tdx": ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"),
    "sgx": ("mrenclave", "mrsigner"),
    "snp": ("snp_measurement", "snp_host_data"),
}


def _composite(evidence: object) -> CompositeEvidence:
    if isinstance(evidence, Quote | SnpReport) or is_extra(getattr(evidence, "kind", "")):
        return CompositeEvidence(CpuEvidence(evidence))
    if isinstance(evidence, CpuEvidence):
        return CompositeEvidence(evidence)
    if not isinstance(evidence, CompositeEvidence):
        raise ValueError(f"{type(evidence).__name__} carries no CPU measurements to pin")
    return evidence


def reference_values(evidence: Iterable[object]) -> dict[str, list[Any]]:
    """Policy fields pinning every piece of ``evidence`` (composite, CPU evidence, a quote or an SNP report):
    ``tee_kinds``, the CPU measurements of each kind (:data:`PINNED_FIELDS`), ``gpu_rim_ids`` and, for SEV-SNP,
    ``snp_min_tcb``: the reported TCB as the floor (the lowest of each component when there are several); for
    a TEE family's kind, its table (:meth:`cchet.attest.tees.Tee.reference`, lists merged per field).
    Raises ``ValueError`` for evidence without a CPU report."""
    out: dict[str, Any] = {"tee_kinds": []}
    for item in evidence:
        ev = _composite(item)
        claims = cpu_claims(ev)
        kind = claims["kind"]
        if kind not in out["tee_kinds"]:
            out["tee_kinds"].append(kind)
        report = ev.cpu.report
        if is_extra(kind):
            _merge_table(out.setdefault(TABLES[kind], {}), tee(kind).reference(report))
            continue
        if isinstance(report, SnpReport):
            t = report.tcb("reported")
            seen = [t.bootloader, t.tee, t.snp, t.microcode]
            floor = out.get("snp_min_tcb")
            out["snp_min_tcb"] = seen if floor is None else [min(a, b) for a, b in zip(floor, seen, strict=True)]
        pairs = [(f, claims[f]) for f in PINNED_FIELDS[kind]]
        pairs += [("gpu_rim_ids", rim) for g in ev.gpus for rim in gpu_rim_ids(g)]
        for key, value in pairs:
            values = out.setdefault(key, [])
            if value not in values:
                values.append(value)
    return out


def _merge_table(table: dict[str, Any], values: dict[str, Any]) -> None:
    """Merge one report's table values in: lists gain the values they lack, tables merge field by field,
    anything else takes the first value seen."""
    for key, value in values.items():
        if isinstance(value, list):
            have = table.setdefault(key, [])
            have.extend(v for v in value if v not in have)
        elif isinstance(value, dict):
            _merge_table(table.setdefault(key, {}), value)
        else:
            table.setdefault(key, value)


def _names_simulated(pem: bytes) -> bool:
    try:
        certs = parse_pem_chain(pem).certificates()
    except EvidenceFormatError:
        return False
    return any("SIMULATED" in c.subject.rfc4514_string() for c in certs)


def is_simulated(evidence: object) -> bool:
    """True when a certificate chain in ``evidence`` names a SIMULATED authority (not a verification)."""
    ev = _composite(evidence)
    report = ev.cpu.report
    chain = report.signature.qe.certification.data if isinstance(report, Quote) else ev.cpu.certificates
    if is_extra(report.kind) and getattr(report, "simulated", False):
        return True  # a family's simulated report says so itself (its keys need not be X.509)
    return any(_names_simulated(pem) for pem in (chain, *(g.certificates for g in ev.gpus)))


def reference_policy(
    evidence: Iterable[object], *, name: str = "", allow_simulation: bool = False, **fields: Any
) -> Policy:
    """A :class:`Policy` pinning the reference values of ``evidence``; ``fields`` set or override any other
    policy field. Raises ``ValueError`` as :func:`reference_values` and :class:`Policy` do."""
    values: dict[str, Any] = dict(reference_values(evidence))
    values.update(fields)
    return Policy(name=name, allow_simulation=allow_simulation, **values)
