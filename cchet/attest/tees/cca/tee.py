"""Kind ``cca`` as a :class:`~cchet.attest.tees.Tee`: each method hands over to the module that does the work,
imported on first use (this module imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cchet.attest.attesters.base import CpuAttester
    from cchet.attest.simulate.authority import SimulatedAuthority
    from cchet.attest.tees import Fail
    from cchet.attest.tees.cca.token import CcaToken
    from cchet.attest.verify.options import TrustAnchor, VerifyOptions
    from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["CcaTee"]

_DEVICE = "sys/bus/platform/devices/arm-cca-dev"


class CcaTee:
    """Arm CCA realms: a CCA attestation token (platform token by the CPAK, realm token by the RAK)."""

    kind: str = "cca"
    section: str = "cca"
    vendors: tuple[str, ...] = ("arm-cca",)
    interfaces: tuple[str, ...] = (_DEVICE,)
    description: str = (
        "Arm CCA realm (CCA attestation token: platform token signed by the CPAK, realm token by the RAK)"
    )

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root  # where local_attester looks for the guest interface (tests point it elsewhere)

    def detect(self, data: bytes) -> bool:
        return data[:3] == b"\xd9\x01\x8f"  # CBOR tag 399, the CCA token collection

    def parse(self, data: bytes) -> CcaToken:
        from cchet.attest.tees.cca.token import parse_token

        return parse_token(data)

    def verify(
        self, report: Any, certificates: bytes, options: VerifyOptions, *, expected_report_data: bytes | None
    ) -> tuple[VerifiedDevice, list[str]]:
        from cchet.attest.tees.cca.verify import verify_cca_token

        return verify_cca_token(report, options, expected_report_data=expected_report_data, carried=certificates)

    def claims(self, report: Any) -> dict[str, Any]:
        from cchet.attest.tees.cca.claims import token_claims

        return token_claims(report)

    def debug(self, report: Any) -> bool:
        from cchet.attest.tees.cca.lifecycle import is_debug

        return is_debug(report.platform_claims.lifecycle)

    def check_section(self, section: Mapping[str, Any]) -> dict[str, Any]:
        from cchet.attest.tees.cca.table import check_section

        return check_section(section)

    def pins(self, section: Mapping[str, Any]) -> bool:
        from cchet.attest.tees.cca.table import pins

        return pins(section)

    def evaluate(self, report: Any, section: Mapping[str, Any], fail: Fail) -> None:
        from cchet.attest.tees.cca.table import evaluate

        evaluate(report, section, fail)

    def reference(self, report: Any) -> dict[str, Any]:
        from cchet.attest.tees.cca.table import reference

        return reference(report)

    def simulate(self, authority: SimulatedAuthority, *, report_data: bytes, **fields: Any) -> tuple[Any, bytes]:
        from cchet.attest.tees.cca.simulate import simulate_cca_token

        return simulate_cca_token(authority, report_data=report_data, **fields), b""

    def simulated_anchors(self, authority: SimulatedAuthority) -> tuple[TrustAnchor, ...]:
        from cchet.attest.tees.cca.simulate import simulated_cpak_anchor

        return (simulated_cpak_anchor(authority),)

    def local_attester(self) -> CpuAttester | None:
        if not (self.root / _DEVICE).exists():
            return None
        from cchet.attest.attesters.configfs_tsm import DEFAULT_TSM_ROOT
        from cchet.attest.tees.cca.attester import CcaAttester

        return CcaAttester(self.root / DEFAULT_TSM_ROOT.relative_to("/"))

    def anchors_from_collateral(self, data: bytes) -> tuple[TrustAnchor, ...]:
        """Arm CCA endorsements in a collateral file (a tastore, an EC JWK or a PEM public key), else ``()``;
        for ``cchet verify --collateral`` (see docs/tees/cca.md)."""
        from cchet.attest.tees.cca.endorsement import anchors_from_collateral

        return anchors_from_collateral(data)
