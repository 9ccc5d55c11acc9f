"""The minimal verifier for SIMULATED evidence: signatures and chains against the simulated roots only.

It runs exactly the checks of the real verifier (:class:`cchet.attest.verify.vendor.VendorVerifier`): for
quotes the quote and QE signatures, the QE binding, the PCK chain and CRLs, TCB status from (simulated)
collateral and the replay of a TDX event log when one is attached; for SNP the VCEK chain, the report
signature and the key's TCB; for GPUs the device chain, the SPDM signature and the FWID. It trusts
simulated anchors only: real evidence never verifies here, whatever anchors the options carry, so
nothing real can be accepted without the revocation and collateral checks of the real verifiers.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace

from cchet.attest.evidence import CompositeEvidence
from cchet.attest.formats.dcap import Quote
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.dcap import simulated_collateral
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import NoCollateral, TrustAnchor, VerifyOptions, default_options
from cchet.attest.verify.verified import Verification

__all__ = ["SimulatedVerifier", "simulated_anchors", "simulated_rims", "simulation_options"]


def simulated_anchors(authority: SimulatedAuthority) -> tuple[TrustAnchor, ...]:
    """The simulated Intel, AMD and NVIDIA roots of ``authority`` as simulated trust anchors, and those of every
    TEE family (:mod:`cchet.attest.tees`; their simulated keys live beside ``authority``'s)."""
    from cchet.attest.tees import tees

    extra = tuple(anchor for family in tees() for anchor in family.simulated_anchors(authority))
    return (
        TrustAnchor("intel", authority.der("intel_root"), simulated=True),
        TrustAnchor("amd", authority.der("amd_ark"), simulated=True),
        TrustAnchor("nvidia", authority.der("nvidia_root"), simulated=True),
        *extra,
    )


class SimulatedVerifier:
    """Implements :class:`~cchet.attest.verify.options.Verifier` for evidence under simulated roots: the
    checks of :class:`~cchet.attest.verify.vendor.VendorVerifier`, with every non-simulated anchor removed
    from the options first."""

    name = "cchet-simulated-verifier"

    def check(self, evidence: CompositeEvidence, options: VerifyOptions) -> Verification:
        """Runs every check and returns what they found, failures included (a vendor with no simulated root
        in the options is one). Raises :class:`~cchet.errors.EvidenceFormatError` when a certificate inside
        the evidence does not decode."""
        from cchet.attest.tees import is_extra, tee
        from cchet.attest.verify.vendor import VendorVerifier

        simulated = tuple(a for a in options.anchors if a.simulated)
        missing: list[str] = []
        kind = evidence.cpu.kind
        cpu_vendors = (
            tee(kind).vendors if is_extra(kind) else ("intel" if isinstance(evidence.cpu.report, Quote) else "amd",)
        )
        for vendor in (*cpu_vendors, *(["nvidia"] if evidence.gpus else [])):
            if not any(a.vendor == vendor for a in simulated):
                check = {"intel": "intel.pck_chain", "amd": "amd.chain", "nvidia": "nvidia.chain"}.get(
                    vendor, f"{kind}.chain"
                )
                missing.append(
                    Failure(check, f"no simulated {vendor} root in the options (this verifier trusts nothing else)")
                )
        found = VendorVerifier().check(evidence, options.replace(anchors=simulated))
        return replace(found, failures=(*missing, *found.failures), verifier=self.name)


@functools.lru_cache(maxsize=1)
def simulated_rims() -> tuple[TrustAnchor, tuple[bytes, bytes]]:
    """A SIMULATED RIM root (a simulated ``nvidia-rim`` anchor) and the driver and VBIOS RIMs it signs for the
    simulator's GPUs (:func:`~cchet.attest.simulate.spdm.default_gpu_measurements`: driver blocks 1..32, VBIOS
    33..64), made once per process: RIMs are collateral of the verifier, never carried by the evidence."""
    from cchet.attest.simulate.rim import SimulatedRimSigner, simulate_rim
    from cchet.attest.simulate.spdm import SIM_DRIVER_VERSION, SIM_VBIOS_VERSION, default_gpu_measurements

    signer = SimulatedRimSigner.create()
    m = default_gpu_measurements()
    driver = simulate_rim(signer, version=SIM_DRIVER_VERSION, measurements={i: m[i + 1] for i in range(32)})
    vbios = simulate_rim(signer, version=SIM_VBIOS_VERSION, measurements={i: m[i + 1] for i in range(32, 64)})
    return TrustAnchor("nvidia-rim", signer.root_der(), simulated=True), (driver, vbios)


def simulation_options(
    authority: SimulatedAuthority,
    *,
    now: dt.datetime | None = None,
    tcb_status: str = "UpToDate",
    advisory_ids: Sequence[str] = (),
    collateral: Mapping[str, str] | None = None,
) -> VerifyOptions:
    """Options that verify SIMULATED evidence of ``authority``: its roots as simulated anchors, simulated
    Intel collateral with ``tcb_status`` and ``advisory_ids`` (or the fixed ``collateral`` given), SIMULATED
    NVIDIA RIMs for its GPUs (:func:`simulated_rims`), and the :class:`SimulatedVerifier`."""

    def intel(quote: Quote) -> Mapping[str, str]:
        if collateral is not None:
            return collateral
        at = now or dt.datetime.now(dt.UTC)
        return simulated_collateral(authority, quote, now=at, tcb_status=tcb_status, advisory_ids=advisory_ids)

    rim_root, rims = simulated_rims()
    return default_options(
        now=now,
        anchors=(*simulated_anchors(authority), rim_root),
        intel_collateral=intel,
        verifier=SimulatedVerifier(),
        collateral=NoCollateral(),  # simulated evidence carries its chains; Intel's comes from the simulator
        rims=rims,
    )
