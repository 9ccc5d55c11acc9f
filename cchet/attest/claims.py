"""Normalised claims: what a piece of evidence says, per device, in one vocabulary for every vendor.

The keys follow the spirit of EAR (IETF RATS "EAT Attestation Results") annotated evidence: hex strings for
measurements, plain numbers and strings for the rest. ``cchet policy from-evidence`` pins these values and
:class:`~cchet.attest.result.AttestationResult` reports them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.x509.oid import NameOID

from cchet.attest.evidence import CompositeEvidence, GpuEvidence
from cchet.attest.formats.certchain import parse_pem_chain
from cchet.attest.formats.dcap import Quote, SgxReportBody, TdReportBody
from cchet.attest.formats.snp import POLICY_MIGRATE_MA, POLICY_SMT, SnpReport
from cchet.attest.tees import is_extra, tee
from cchet.errors import EvidenceFormatError

__all__ = ["cpu_claims", "gpu_chip", "gpu_claims", "gpu_identity", "gpu_rim_ids", "identity_of_chain"]


def _tdx(body: TdReportBody) -> dict[str, Any]:
    return {
        "mrtd": body.mr_td.hex(),
        "rtmr0": body.rtmrs[0].hex(),
        "rtmr1": body.rtmrs[1].hex(),
        "rtmr2": body.rtmrs[2].hex(),
        "rtmr3": body.rtmrs[3].hex(),
        "mrconfigid": body.mr_config_id.hex(),
        "mrseam": body.mr_seam.hex(),
        "td_attributes": body.td_attributes.hex(),
        "xfam": body.xfam.hex(),
        "tee_tcb_svn": body.tee_tcb_svn.hex(),
        "debug": body.debug,
    }


def _sgx(body: SgxReportBody) -> dict[str, Any]:
    return {
        "mrenclave": body.mr_enclave.hex(),
        "mrsigner": body.mr_signer.hex(),
        "isv_prod_id": body.isv_prod_id,
        "isv_svn": body.isv_svn,
        "attributes": body.attributes.hex(),
        "debug": body.debug,
    }


def _snp(report: SnpReport) -> dict[str, Any]:
    tcb = report.tcb("reported")
    return {
        "snp_measurement": report.measurement.hex(),
        "snp_host_data": report.host_data.hex(),
        "policy": f"{report.policy:#x}",
        "smt_allowed": bool(report.policy & POLICY_SMT),
        "migration_agent_allowed": bool(report.policy & POLICY_MIGRATE_MA),
        "vmpl": report.vmpl,
        "reported_tcb": [tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode],
        "firmware": f"{report.current_major}.{report.current_minor}.{report.current_build}",
        "chip_id": report.chip_id.hex(),
        "signing_key": report.signing_key,
        "debug": report.debug,
    }


def cpu_claims(evidence: CompositeEvidence) -> dict[str, Any]:
    """Claims of the CPU TEE report, including ``kind`` and ``report_data`` (hex)."""
    report = evidence.cpu.report
    out: dict[str, Any] = {"kind": report.kind, "report_data": report.report_data.hex()}
    if is_extra(report.kind):
        out.update(tee(report.kind).claims(report))
    elif isinstance(report, Quote):
        out["quote_version"] = report.header.version
        body = report.body
        out.update(_tdx(body) if isinstance(body, TdReportBody) else _sgx(body))
    else:
        out["report_version"] = report.version
        out.update(_snp(report))
    return out


def gpu_chip(gpu: GpuEvidence) -> str | None:
    """The chip name (``GH100``, ``GB100``) from the device leaf's common name, or None."""
    try:
        leaf = parse_pem_chain(gpu.certificates).certificates()[0]
    except EvidenceFormatError:
        return None
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    first = str(names[0].value).split(" ", 1)[0]
    return first or None


def identity_of_chain(pem: bytes) -> str:
    """A GPU's identity: the SHA-256 (hex) of its device certificate, the first of the PEM chain that NVML
    serves for it and that signs its attestation reports; "" when the chain holds no certificate."""
    try:
        ders = parse_pem_chain(pem).ders
    except EvidenceFormatError:
        return ""
    return hashlib.sha256(ders[0]).hexdigest() if ders else ""


def gpu_identity(gpu: GpuEvidence) -> str:
    """The identity (:func:`identity_of_chain`) of the GPU that signed this report."""
    return identity_of_chain(gpu.certificates)


def gpu_rim_ids(gpu: GpuEvidence) -> tuple[str, ...]:
    """The ids of the driver and VBIOS reference-integrity manifests NVIDIA publishes for this report
    (``NV_GPU_DRIVER_GH100_550.90.07``, ``NV_GPU_VBIOS_1010_0200_882_96009F0001``); those it cannot name
    from the report are left out."""
    r = gpu.report
    out = []
    chip = gpu_chip(gpu)
    if chip and r.driver_version:
        out.append(f"NV_GPU_DRIVER_{chip}_{r.driver_version}")
    if r.project and r.project_sku and r.chip_sku and r.vbios_version:
        out.append(f"NV_GPU_VBIOS_{r.project}_{r.project_sku}_{r.chip_sku}_{r.vbios_version.replace('.', '')}")
    return tuple(out)


def gpu_claims(gpu: GpuEvidence) -> dict[str, Any]:
    """Claims of one GPU report."""
    r = gpu.report
    return {
        "kind": "nvidia-gpu",
        "index": gpu.index,
        "chip": gpu_chip(gpu),
        "nonce": r.request.nonce.hex(),
        "driver_version": r.driver_version,
        "vbios_version": r.vbios_version,
        "fwid": r.fwid.hex() if r.fwid else None,
        "rim_ids": list(gpu_rim_ids(gpu)),
        "measurements": {str(i): v.hex() for i, v in sorted(r.measurements().items())},
    }
