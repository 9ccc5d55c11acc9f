"""Verifying one NVIDIA GPU report as a device: :func:`~cchet.attest.verify.gpu.check_gpu`, then its
driver and VBIOS RIMs (given in the options, or from the collateral source by RIM id) against its
measurements (:mod:`cchet.attest.verify.rim`)."""

from __future__ import annotations

from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.verify.gpu import check_gpu
from cchet.attest.verify.options import VerifyOptions
from cchet.attest.verify.rim import check_rims, rim_version
from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["verify_gpu_device"]


def _rim(options: VerifyOptions, kind: str, version: str | None, rim_id: str | None) -> tuple[bytes | None, str]:
    """The signed RIM for ``version`` (given in the options, else from the collateral source by ``rim_id``),
    or None and why it is missing."""
    from cchet.attest.collateral.fetcher import FetchError

    if version is None:
        return None, f"{kind} RIM: the report names no {kind} version"
    for data in options.rims:
        found = rim_version(data)
        if found is not None and found.lower() == version.lower():
            return data, ""
    if rim_id is None:
        return None, f"{kind} RIM: no RIM id for version {version} (unknown chip)"
    if options.collateral is None:
        return None, f"{kind} RIM {rim_id}: not given and no collateral source"
    try:
        fetched = options.collateral.nvidia_rim(rim_id, options.now())
    except FetchError as e:
        return None, f"{kind} RIM {rim_id}: not cached, and fetching it failed: {e}"
    if fetched is None:
        return None, f"{kind} RIM {rim_id}: not cached ('cchet collateral fetch' gets it) and no fetcher configured"
    return fetched, ""


def verify_gpu_device(
    report: SpdmReport,
    certificates: bytes,
    options: VerifyOptions,
    *,
    index: int = 0,
    expected_nonce: bytes | None = None,
) -> tuple[VerifiedDevice, list[str]]:
    """The verified GPU device (``gpu<index>``) and every failure. A RIM that is unavailable leaves the
    measurements ``not compared`` and says why in ``rims_missing`` (no failure: appraisal decides, and refuses
    by default); one that does not verify, or differs, is a failure. Raises
    :class:`~cchet.errors.EvidenceFormatError` when the certificates do not decode."""
    from cchet.attest.claims import gpu_chip, gpu_rim_ids
    from cchet.attest.evidence import GpuEvidence

    now = options.now()
    what = f"gpu{index}"
    check = check_gpu(
        report, certificates, options.anchors_for("nvidia"), now, what=what, expected_nonce=expected_nonce
    )
    failures = list(check.failures)
    gpu = GpuEvidence(index, report, certificates)
    ids = gpu_rim_ids(gpu)
    driver, driver_missing = _rim(
        options, "driver", report.driver_version, next((i for i in ids if i.startswith("NV_GPU_DRIVER_")), None)
    )
    vbios, vbios_missing = _rim(
        options, "VBIOS", report.vbios_version, next((i for i in ids if i.startswith("NV_GPU_VBIOS_")), None)
    )
    rims = check_rims(report, driver, vbios, options.anchors_for("nvidia-rim"), now, what=what, chip=gpu_chip(gpu))
    failures.extend(rims.failures)
    anchor = check.anchor
    device = VerifiedDevice(
        what,
        "nvidia-gpu",
        bool(anchor and anchor.simulated),
        anchor.fingerprint if anchor else "",
        measurements=rims.status,
        rim_versions=rims.versions,
        rims_missing=tuple(m for m in (driver_missing, vbios_missing) if m),
    )
    return device, failures
