"""Intel collateral for the conformance tests: go-tdx-guest's PCS responses as dcap-qvl collateral, and
re-signing simulated collateral after changing its TCB levels."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cchet.attest.collateral import Response
from cchet.attest.collateral.pcs import signed_object
from cchet.attest.rawsig import raw_from_der
from cchet.attest.simulate import SimulatedAuthority
from tests.conftest import fixture_path


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]


def fixture_json(relative: str) -> dict[str, str]:
    doc: dict[str, str] = json.loads(fixture_path(relative).read_text())
    return doc


def go_collateral(tcb_response: str) -> dict[str, str]:
    """go-tdx-guest's Intel PCS responses (TCB info, QE identity, PCK CRL, root CRL, header chains)."""

    def read(name: str) -> bytes:
        return fixture_path(f"go_tdx_guest/{name}").read_bytes()

    tcb, tcb_sig = signed_object(Response(read(tcb_response)), "tcbInfo", tcb_response)
    qe, qe_sig = signed_object(Response(read("sample_qeIdentity_response")), "enclaveIdentity", "qe")
    return {
        "pck_crl_issuer_chain": read("pckCrlIssuerChain.pem").decode(),
        "root_ca_crl": read("rootcrl.der").hex(),
        "pck_crl": read("pckcrl").hex(),
        "tcb_info_issuer_chain": read("tcbInfoIssuerChain.pem").decode(),
        "tcb_info": tcb,
        "tcb_info_signature": tcb_sig,
        "qe_identity_issuer_chain": read("qeIdentityIssuerChain.pem").decode(),
        "qe_identity": qe,
        "qe_identity_signature": qe_sig,
    }


def resign(
    authority: SimulatedAuthority,
    collateral: dict[str, str],
    *,
    tcb_info: dict[str, Any] | None = None,
    qe_identity: dict[str, Any] | None = None,
) -> dict[str, str]:
    """``collateral`` with new TCB info and/or QE identity, signed by the simulated TCB signing key."""
    out = dict(collateral)
    for name, doc in (("tcb_info", tcb_info), ("qe_identity", qe_identity)):
        if doc is None:
            continue
        text = json.dumps(doc, separators=(",", ":"))
        out[name] = text
        out[f"{name}_signature"] = raw_from_der(authority.sign("intel_tcb_signing", text.encode()), 32).hex()
    return out
