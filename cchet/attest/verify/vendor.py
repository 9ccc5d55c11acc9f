"""The real verifier: Intel DCAP quotes, AMD SEV-SNP reports, each TEE family's reports (:mod:`cchet.attest.tees`)
and NVIDIA GPU reports under the anchors in the options (by default the vendor roots pinned in
:mod:`cchet.attest.verify.roots`).

Every device is verified and every failure collected; the :class:`~cchet.attest.verify.verified.Verification`
lists them all with what each device's checks established. A device chained to a simulated anchor is stamped
simulated; with :func:`~cchet.attest.verify.options.default_options` there are none.
"""

from __future__ import annotations

from cchet.attest.evidence import CompositeEvidence
from cchet.attest.formats.dcap import Quote
from cchet.attest.tees import is_extra, tee
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import VerifyOptions
from cchet.attest.verify.verified import Verification

__all__ = ["VendorVerifier"]


class VendorVerifier:
    """Implements :class:`~cchet.attest.verify.options.Verifier` for real (and, given simulated anchors,
    simulated) evidence."""

    name = "cchet-vendor-verifier"

    def check(self, evidence: CompositeEvidence, options: VerifyOptions) -> Verification:
        """Runs every check of every device and returns what they found, failures included. Raises
        :class:`~cchet.errors.EvidenceFormatError` when a certificate does not decode. GPU nonces are not
        checked here: appraisal checks them against the binding."""
        now = options.now()
        failures: list[str] = []
        report = evidence.cpu.report
        expected = options.expected_report_data
        if is_extra(evidence.cpu.kind):
            cpu, cpu_failures = tee(evidence.cpu.kind).verify(
                report, evidence.cpu.certificates, options, expected_report_data=expected
            )
        elif isinstance(report, Quote):
            cpu, cpu_failures = verify_quote_device(
                report, options, event_log=evidence.cpu.event_log, expected_report_data=expected
            )
        else:
            cpu, cpu_failures = verify_snp_device(
                report, evidence.cpu.certificates, options, expected_report_data=expected
            )
        failures.extend(cpu_failures)
        gpus = []
        for g in evidence.gpus:
            gpu, gpu_failures = verify_gpu_device(g.report, g.certificates, options, index=g.index)
            failures.extend(gpu_failures)
            gpus.append(gpu)
        return Verification(evidence, cpu, tuple(gpus), tuple(failures), now, self.name)
