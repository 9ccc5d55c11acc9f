"""CPU TEE kinds beyond the bare-metal Intel (TDX, SGX) and AMD (SEV-SNP) reports, each a family module here.

Every family plugs into the one attestation pipeline at the same places, through a :class:`Tee` per kind:
parsing (:func:`cchet.attest.formats.parse`, the composite evidence document), verification
(:class:`~cchet.attest.verify.vendor.VendorVerifier`), claims, the policy section of its kind and its rules
(:func:`~cchet.attest.appraise.evaluate`), reference values (``cchet policy from-evidence``), simulation (SIMULATED
evidence in the real formats, with simulated roots) and the local attester. The built-in kinds keep their own
code paths; :data:`ALL` is every kind a policy, a placement (``tee=``) or a simulated node may name.

Family modules are imported on first use only, and import their own libraries (CBOR/COSE, SM2/SM3) lazily:
``import cchet`` stays light.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cchet.attest.simulate.authority import SimulatedAuthority
    from cchet.attest.verify.checks import Check
    from cchet.attest.verify.options import TrustAnchor, VerifyOptions
    from cchet.attest.verify.verified import VerifiedDevice

__all__ = [
    "ALL",
    "BUILTIN",
    "EXTRA",
    "FAMILIES",
    "Fail",
    "Tee",
    "extra_checks",
    "is_extra",
    "json_object_keys",
    "tee",
    "tees",
]

BUILTIN = ("tdx", "snp", "sgx")
FAMILIES: Mapping[str, tuple[str, ...]] = {
    "cchet.attest.tees.azure": ("az-snp", "az-tdx"),
    "cchet.attest.tees.csv": ("csv",),
    "cchet.attest.tees.cca": ("cca",),
}
EXTRA = tuple(kind for kinds in FAMILIES.values() for kind in kinds)
ALL = BUILTIN + EXTRA

Fail = Callable[[str, str, Any, Any], None]
"""``fail(rule, evidence_field, expected, actual)``: record one policy violation of the CPU device; ``rule`` is
``"<section>.<field>"`` (``"cca.rim"``), the policy field that decided it."""


class Tee(Protocol):
    """One CPU TEE kind of a family module (its ``TEES`` mapping holds one per kind it adds).

    Reports it parses are frozen objects with ``kind`` (this kind), ``report_data`` (the 64 bytes the evidence
    binds: cchet's transcript, DESIGN.md section 4), ``simulated`` (whether it names a SIMULATED authority: a
    label, not a verification) and ``to_bytes()`` (the exact inverse of :meth:`parse`).
    """

    kind: str
    section: str
    """The policy field (a table: ``Policy(csv={...})``, ``[csv]`` in a policy file) holding this kind's rules."""
    vendors: tuple[str, ...]
    """The trust-anchor vendors its verification needs (``options.anchors_for(vendor)``)."""
    interfaces: tuple[str, ...]
    """Guest paths (relative to ``/``) whose presence says this kind's interface is here (``cchet info``)."""
    description: str

    def detect(self, data: bytes) -> bool:
        """Whether ``data`` looks like this kind's report (for :func:`cchet.attest.formats.parse`): its binary
        form, or a JSON document of another project's (trustee's evidence) that only this kind writes."""

    def parse(self, data: bytes) -> Any:
        """The report; :class:`~cchet.errors.EvidenceFormatError` naming the offset and field otherwise."""

    def verify(
        self, report: Any, certificates: bytes, options: VerifyOptions, *, expected_report_data: bytes | None
    ) -> tuple[VerifiedDevice, list[str]]:
        """The verified CPU device and every failure (each a :class:`~cchet.attest.verify.failure.Failure`
        of a check this family lists in its ``CHECKS``); with ``expected_report_data``, a failure unless the
        report data is exactly those bytes. Raises ``EvidenceFormatError`` only for undecodable certificates."""

    def claims(self, report: Any) -> dict[str, Any]:
        """Normalised claims (hex strings for measurements), ``kind`` included."""

    def debug(self, report: Any) -> bool:
        """Whether the TEE runs in a debug mode that gives up confidentiality (refused unless ``allow_debug``)."""

    def check_section(self, section: Mapping[str, Any]) -> dict[str, Any]:
        """This kind's policy table, validated and normalised; ``ValueError`` naming ``policy.<section>.<field>``
        (unknown fields included)."""

    def pins(self, section: Mapping[str, Any]) -> bool:
        """Whether the (normalised) table pins the measurements ``measurements="pinned"`` requires."""

    def evaluate(self, report: Any, section: Mapping[str, Any], fail: Fail) -> None:
        """Apply the table's rules to a verified report, calling ``fail`` for each violation."""

    def reference(self, report: Any) -> dict[str, Any]:
        """The table values that pin this report (``cchet policy from-evidence``)."""

    def simulate(self, authority: SimulatedAuthority, *, report_data: bytes, **fields: Any) -> tuple[Any, bytes]:
        """A SIMULATED report binding ``report_data`` (64 bytes) and its certificates, signed by simulated keys
        kept beside ``authority``'s; ``fields`` override measurements and flags."""

    def simulated_anchors(self, authority: SimulatedAuthority) -> tuple[TrustAnchor, ...]:
        """The simulated roots that verify :meth:`simulate`'s reports (subjects say SIMULATED)."""

    def local_attester(self) -> Any:
        """This machine's :class:`~cchet.attest.attesters.base.CpuAttester` for the kind, or None when its
        interface is not here (it must not touch the hardware to find out)."""

    def anchors_from_collateral(self, data: bytes) -> tuple[TrustAnchor, ...]:
        """The trust anchors in a file given as ``cchet verify --collateral FILE`` when it holds this family's
        (Arm CCA endorsements), else ``()``; ``ValueError`` when it is one of its formats but malformed."""


def json_object_keys(data: bytes) -> frozenset[str] | None:
    """The top-level keys of ``data`` when it is a JSON object, else None (for :meth:`Tee.detect` on another
    project's JSON evidence: detection reads the document's shape, parsing checks it)."""
    if bytes(data).lstrip()[:1] != b"{":
        return None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return frozenset(doc) if isinstance(doc, dict) else None


def is_extra(kind: str) -> bool:
    return kind in EXTRA


def tee(kind: str) -> Tee:
    """The :class:`Tee` of an extra kind (imports its family module); ``ValueError`` for any other."""
    for module, kinds in FAMILIES.items():
        if kind in kinds:
            found: Tee = importlib.import_module(module).TEES[kind]
            return found
    raise ValueError(f"{kind!r} is not a TEE kind of a family module; extra kinds: {', '.join(EXTRA)}")


def tees() -> list[Tee]:
    """Every extra kind's :class:`Tee`."""
    out = []
    for module, kinds in FAMILIES.items():
        provided = importlib.import_module(module).TEES
        out += [provided[kind] for kind in kinds if kind in provided]
    return out


def extra_checks() -> tuple[Check, ...]:
    """The verification checks every family lists (its module's ``CHECKS``)."""
    out: list[Check] = []
    for module in FAMILIES:
        out.extend(importlib.import_module(module).CHECKS)
    return tuple(out)
