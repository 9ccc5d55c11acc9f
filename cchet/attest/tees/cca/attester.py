"""Arm CCA realm tokens through the kernel's configfs-tsm interface, on a real realm.

A Linux guest in a CCA realm (Linux 6.13 or later with ``CONFIG_ARM_CCA_GUEST``) has the platform device
``/sys/bus/platform/devices/arm-cca-dev`` and, with configfs mounted, ``/sys/kernel/config/tsm/report`` whose
``provider`` reads ``arm_cca_guest``. Writing the 64 bytes of report data to a report entry's ``inblob``
makes the kernel ask RMM for a token (RSI_ATTESTATION_TOKEN_INIT/CONTINUE) with that realm challenge;
``outblob`` is then the whole CCA token (tag-399 collection), and there is no ``auxblob``: the platform's
endorsement (its CPAK) comes from its owner, not from the guest.

On a realm: ``mount -t configfs none /sys/kernel/config`` if needed, load ``arm-cca-guest`` if it is a
module, and run as a user that may create directories under ``/sys/kernel/config/tsm/report`` (root).
"""

from __future__ import annotations

from pathlib import Path

from cchet.attest.attesters.configfs_tsm import DEFAULT_TSM_ROOT, TsmAttester
from cchet.attest.evidence import CpuEvidence
from cchet.attest.tees.cca.token import parse_token
from cchet.errors import AttestationError, DeviceUnavailable

__all__ = ["DEVICE", "PROVIDER", "CcaAttester"]

DEVICE = Path("/sys/bus/platform/devices/arm-cca-dev")
PROVIDER = "arm_cca_guest"


class CcaAttester:
    """Collects a CCA token through configfs-tsm under ``root`` (``tsm`` replaces the file access: tests
    inject a fake kernel)."""

    kind = "cca"

    def __init__(self, root: Path = DEFAULT_TSM_ROOT, *, tsm: TsmAttester | None = None) -> None:
        self.root = Path(root)
        self.tsm = tsm if tsm is not None else TsmAttester(self.root, ccel=None)

    def collect(self, report_data: bytes) -> CpuEvidence:
        """The realm's token for ``report_data``. Raises ``ValueError`` unless it is 64 bytes,
        :class:`DeviceUnavailable` without configfs-tsm or under another provider, :class:`AttestationError`
        when another writer raced us or the token carries another challenge,
        :class:`~cchet.errors.EvidenceFormatError` when the kernel's bytes are not a CCA token."""
        if len(report_data) != 64:
            raise ValueError("report_data must be exactly 64 bytes")
        if not self.tsm.root.is_dir():
            raise DeviceUnavailable(
                f"no configfs-tsm at {self.tsm.root}: not an Arm CCA realm with Linux >= 6.13 and configfs mounted "
                "(mount -t configfs none /sys/kernel/config), or use cchet.attest.simulate for a SIMULATED realm"
            )
        entry = self.tsm.make_entry()
        try:
            provider = self.tsm.read(entry, "provider").decode().strip()
            if provider != PROVIDER:
                raise DeviceUnavailable(f"configfs-tsm provider {provider!r} is not {PROVIDER!r} (an Arm CCA realm)")
            before = int(self.tsm.read(entry, "generation"))
            self.tsm.write(entry, "inblob", report_data)
            outblob = self.tsm.read(entry, "outblob")
            after = int(self.tsm.read(entry, "generation"))
        finally:
            self.tsm.remove_entry(entry)
        if after != before + 1:
            raise AttestationError(
                f"configfs-tsm generation moved from {before} to {after}: a concurrent writer changed the "
                "request; retry"
            )
        token = parse_token(outblob)
        if token.report_data != report_data:
            raise AttestationError("the CCA token's realm challenge is not the report data requested")
        return CpuEvidence(token, b"")
