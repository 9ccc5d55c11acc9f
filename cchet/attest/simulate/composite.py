"""SIMULATED composite evidence: a CPU report (TDX, SNP, SGX or a TEE family's kind) and GPU reports, bound as
DESIGN.md section 4.

SIMULATED EVIDENCE PROTECTS NOTHING. It is the real binary formats signed by the simulator's keys, so the
broker, verification and appraisal run their real code on it, and every result says SIMULATED.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cchet.attest.binding import Binding, compute_report_data, gpu_nonce
from cchet.attest.evidence import CompositeEvidence, CpuEvidence, GpuEvidence, gpu_transcripts
from cchet.attest.formats.dcap import Quote
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.ccel import simulate_event_log
from cchet.attest.simulate.dcap import simulate_sgx_quote, simulate_tdx_quote
from cchet.attest.simulate.snp import simulate_snp_report
from cchet.attest.simulate.spdm import simulate_spdm_report
from cchet.attest.tees import ALL, is_extra, tee

__all__ = ["CPU_KINDS", "simulate_composite"]

CPU_KINDS = ALL  # the built-in kinds, then each TEE family's (cchet.attest.tees)


def simulate_composite(
    authority: SimulatedAuthority,
    kind: str,
    *,
    nonce: bytes | None = None,
    binding: Binding | None = None,
    report_data: bytes | None = None,
    gpus: int = 0,
    cpu: Mapping[str, Any] | None = None,
    gpu: Mapping[str, Any] | None = None,
) -> CompositeEvidence:
    """SIMULATED evidence for a ``kind`` CPU TEE and ``gpus`` GPUs.

    With ``nonce`` and ``binding`` (what a worker does): GPU ``i`` answers :func:`gpu_nonce` (nonce, i) and
    the CPU report data is :func:`compute_report_data` over the binding, the nonce and the GPU reports. With
    ``report_data`` instead: exactly those 64 bytes, and GPUs answer random nonces. ``cpu`` and ``gpu`` pass
    measurements and other fields to :func:`simulate_tdx_quote` / :func:`simulate_snp_report` /
    :func:`simulate_sgx_quote` and :func:`simulate_spdm_report` (``gpu={"cc_mode": "devtools"}`` sets the
    GPUs' reported CC mode, ``on`` by default); for TDX, ``cpu={"events": [(rtmr, data),
    ...]}`` attaches a simulated event log and sets the RTMRs to its replay. Raises ``ValueError`` on a bad
    combination.
    """
    if kind not in CPU_KINDS:
        raise ValueError(f"kind must be one of {', '.join(CPU_KINDS)}")
    if not 0 <= gpus <= 255:
        raise ValueError("gpus must be 0..255")
    bound = nonce is not None and binding is not None
    if bound == (report_data is not None):
        raise ValueError("give either nonce and binding, or report_data")
    gpu_list = []
    gpu_fields = dict(gpu or {})
    cc_mode = gpu_fields.pop("cc_mode", "on")
    for i in range(gpus):
        n = gpu_nonce(nonce, i) if bound and nonce is not None else os.urandom(32)
        report, chain = simulate_spdm_report(authority, nonce=n, **gpu_fields)
        gpu_list.append(GpuEvidence(i, report, chain, cc_mode))
    if binding is not None and nonce is not None:
        report_data = compute_report_data(binding, nonce, gpu_transcripts(gpu_list))
    assert report_data is not None
    kwargs = dict(cpu or {})
    cpu_evidence: CpuEvidence
    if kind == "tdx":
        events = kwargs.pop("events", None)
        log = None
        if events is not None:
            log, kwargs["rtmrs"] = simulate_event_log(events)
        quote: Quote = simulate_tdx_quote(authority, report_data=report_data, **kwargs)
        cpu_evidence = CpuEvidence(quote, b"", log)
    elif kind == "sgx":
        cpu_evidence = CpuEvidence(simulate_sgx_quote(authority, report_data=report_data, **kwargs))
    elif is_extra(kind):
        report, certificates = tee(kind).simulate(authority, report_data=report_data, **kwargs)
        cpu_evidence = CpuEvidence(report, certificates)
    else:
        snp, chain = simulate_snp_report(authority, report_data=report_data, **kwargs)
        cpu_evidence = CpuEvidence(snp, chain)
    return CompositeEvidence(cpu_evidence, tuple(gpu_list))
