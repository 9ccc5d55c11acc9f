"""Attack from the outside security review: Intel collateral re-signed by a certificate that chains to the
Intel root but is not the TCB signing certificate.

Every certificate under the root can sign, a platform's own PCK key included. An owner of one platform
re-signs its TCB info (or QE identity) with that key, or with the PCK Platform CA's, turning ``OutOfDate``
into ``UpToDate``, and ships the PCK chain as the issuer chain: every signature and link verifies. Only
requiring the TCB signing certificate itself (``intel.tcb_signer``) refuses it. Before that check existed,
each case below verified with no failure and the forged ``UpToDate``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from cchet.attest.formats.dcap import Quote
from cchet.attest.rawsig import raw_from_der
from cchet.attest.simulate import SimulatedAuthority, simulate_sgx_quote, simulate_tdx_quote, simulated_collateral
from cchet.attest.simulate.verifier import simulation_options
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.intel import verify_quote_device
from cchet.errors import CertificateChainError
from tests.attest.conftest import NOW

TCB_SIGNING = ("intel_tcb_signing", "intel_root")
FORGERS = {
    "pck_leaf": ("intel_pck", "intel_pck_ca", "intel_root"),
    "pck_platform_ca": ("intel_pck_ca", "intel_root"),
}
QUOTES: dict[str, Callable[[SimulatedAuthority], Quote]] = {
    "tdx": lambda a: simulate_tdx_quote(a, report_data=bytes(64)),
    "sgx": lambda a: simulate_sgx_quote(a, report_data=bytes(64)),
}


def _signed(
    authority: SimulatedAuthority, collateral: dict[str, str], name: str, status: str, chain: tuple[str, ...]
) -> dict[str, str]:
    """``collateral`` with every TCB level of ``name`` set to ``status``, signed by ``chain[0]``'s key and
    carrying ``chain`` as its issuer chain."""
    doc = json.loads(collateral[name])
    for level in doc["tcbLevels"]:
        level["tcbStatus"] = status
    text = json.dumps(doc, separators=(",", ":"))
    signature = raw_from_der(authority.sign(chain[0], text.encode()), 32).hex()
    issuer_chain = authority.pem(*chain).decode()
    return {**collateral, name: text, f"{name}_signature": signature, f"{name}_issuer_chain": issuer_chain}


def _verify(authority: SimulatedAuthority, quote: Quote, collateral: dict[str, str]) -> tuple[str | None, list[str]]:
    device, failures = verify_quote_device(quote, simulation_options(authority, now=NOW, collateral=collateral))
    return device.tcb_status, failures


@pytest.mark.parametrize("forger", sorted(FORGERS))
@pytest.mark.parametrize("name", ["tcb_info", "qe_identity"])
@pytest.mark.parametrize("kind", sorted(QUOTES))
def test_collateral_resigned_by_a_key_under_the_root_is_refused(
    authority: SimulatedAuthority, kind: str, name: str, forger: str
) -> None:
    quote = QUOTES[kind](authority)
    honest = simulated_collateral(authority, quote, now=NOW)
    honest = _signed(authority, honest, name, "OutOfDate", TCB_SIGNING)  # what Intel says of this platform
    assert _verify(authority, quote, honest) == ("OutOfDate", [])

    forged = _signed(authority, honest, name, "UpToDate", FORGERS[forger])
    status, failures = _verify(authority, quote, forged)

    assert "intel.tcb_signer" in {getattr(f, "check", None) for f in failures}, (status, failures)
    assert status is None  # the forged text is never parsed, so no status comes from it
    assert all("is not the Intel SGX TCB Signing certificate" in f for f in failures)
    with pytest.raises(CertificateChainError):
        raise_failures(failures)
