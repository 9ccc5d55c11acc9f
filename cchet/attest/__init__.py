"""Attestation: parse evidence, verify it, appraise it against a policy. Collect it; simulate it.

Three steps, one direction (DESIGN.md section 4): :func:`parse` (bytes -> frozen dataclasses; ``serialize``
is the exact inverse) -> verification (:mod:`cchet.attest.verify`; signatures, chains, collateral) ->
:func:`appraise` (a :class:`Policy`; every violation listed). The report-data binding is
:mod:`cchet.attest.binding`; simulated TEEs are :mod:`cchet.attest.simulate`; local evidence collection is
:mod:`cchet.attest.attesters`.

The names below load on first use (certificate handling is the expensive part), so importing this package
and ``cchet`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported eagerly: the submodule shares the function's name, and importing it later would shadow the
# function with the module on this package.
from cchet.attest.appraise import appraise

if TYPE_CHECKING:
    from cchet.attest.binding import Binding as Binding
    from cchet.attest.binding import compute_report_data as compute_report_data
    from cchet.attest.binding import gpu_nonce as gpu_nonce
    from cchet.attest.evidence import CompositeEvidence as CompositeEvidence
    from cchet.attest.evidence import CpuEvidence as CpuEvidence
    from cchet.attest.evidence import GpuEvidence as GpuEvidence
    from cchet.attest.formats import parse as parse
    from cchet.attest.formats import serialize as serialize
    from cchet.attest.policy import Policy as Policy
    from cchet.attest.result import AttestationResult as AttestationResult
    from cchet.attest.result import DeviceClaims as DeviceClaims
    from cchet.attest.result import Violation as Violation
    from cchet.attest.verify import TrustAnchor as TrustAnchor
    from cchet.attest.verify import Verification as Verification
    from cchet.attest.verify import VerifyOptions as VerifyOptions
    from cchet.attest.verify import default_options as default_options

_WHERE = {
    "AttestationResult": "cchet.attest.result",
    "Binding": "cchet.attest.binding",
    "CompositeEvidence": "cchet.attest.evidence",
    "CpuEvidence": "cchet.attest.evidence",
    "DeviceClaims": "cchet.attest.result",
    "GpuEvidence": "cchet.attest.evidence",
    "Policy": "cchet.attest.policy",
    "TrustAnchor": "cchet.attest.verify",
    "Verification": "cchet.attest.verify",
    "VerifyOptions": "cchet.attest.verify",
    "Violation": "cchet.attest.result",
    "compute_report_data": "cchet.attest.binding",
    "default_options": "cchet.attest.verify",
    "gpu_nonce": "cchet.attest.binding",
    "parse": "cchet.attest.formats",
    "serialize": "cchet.attest.formats",
}

__all__ = [
    "AttestationResult",
    "Binding",
    "CompositeEvidence",
    "CpuEvidence",
    "DeviceClaims",
    "GpuEvidence",
    "Policy",
    "TrustAnchor",
    "Verification",
    "VerifyOptions",
    "Violation",
    "appraise",
    "compute_report_data",
    "default_options",
    "gpu_nonce",
    "parse",
    "serialize",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cchet.attest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
