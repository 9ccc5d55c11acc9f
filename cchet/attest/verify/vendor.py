"""The real verifier: Intel DCAP quotes, AMD SEV-SNP reports and NVIDIA GPU reports under the anchors in the
options (by default the vendor roots pinned in :mod:`cchet.attest.verify.roots`).

Every device is verified and every failure collected before deciding; one
:class:`~cchet.errors.VerificationError` (the class of the first failure, see
:mod:`cchet.attest.verify.checks`) lists them all. A device chained to a simulated anchor is stamped
simulated; with :func:`~cchet.attest.verify.options.default_options` there are none.
"""

from __future__ import annotations

from cchet.attest.evidence import CompositeEvidence
from cchet.attest.formats.dcap import Quote
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import VerifyOptions
from cchet.attest.verify.verified import VerifiedEvidence

__all__ = ["VendorVerifier"]


class VendorVerifier:
    """Implements :class:`~cchet.attest.verify.options.Verifier` for real (and, given simulated anchors,
    simulated) evidence."""

    name = "cchet-vendor-verifier"

    def verify(self, evidence: CompositeEvidence, options: VerifyOptions) -> VerifiedEvidence:
        """Returns the verified evidence, or raises one :class:`~cchet.errors.VerificationError` listing every
        failed check. Raises :class:`~cchet.errors.EvidenceFormatError` when a certificate does not decode.
        GPU nonces are not checked here: appraisal checks them against the binding."""
        now = options.now()
        failures: list[str] = []
        report = evidence.cpu.report
        if isinstance(report, Quote):
            cpu, cpu_failures = verify_quote_device(report, options, event_log=evidence.cpu.event_log)
        else:
            cpu, cpu_failures = verify_snp_device(report, evidence.cpu.certificates, options)
        failures.extend(cpu_failures)
        gpus = []
        for g in evidence.gpus:
            gpu, gpu_failures = verify_gpu_device(g.report, g.certificates, options, index=g.index)
            failures.extend(gpu_failures)
            gpus.append(gpu)
        if failures:
            raise_failures(failures)
        return VerifiedEvidence(evidence, cpu, tuple(gpus), now, self.name)
