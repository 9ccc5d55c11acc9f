"""Each rule of ``intel.tcb_signer`` on its own (cchet.attest.verify.tcb_signer), on Intel's real certificates
and on certificates the simulated root issues with one property wrong; and the simulator's TCB signer, old
key directories included, passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from cchet.attest import formats
from cchet.attest.formats.certchain import load_certificate
from cchet.attest.formats.dcap import Quote
from cchet.attest.simulate import SimulatedAuthority, simulate_tdx_quote, simulated_collateral
from cchet.attest.simulate.verifier import simulated_anchors
from cchet.attest.verify.options import TrustAnchor
from cchet.attest.verify.roots import INTEL_SGX_ROOT
from cchet.attest.verify.tcb_signer import TCB_SIGNER_SUBJECT, _encoded_as_intel, tcb_signer_problems
from tests.attest.conftest import NOW
from tests.conftest import fixture_path

INTEL = TrustAnchor.pinned(INTEL_SGX_ROOT)
_USAGE = {
    "digital_signature": True,
    "content_commitment": True,
    "key_encipherment": False,
    "data_encipherment": False,
    "key_agreement": False,
    "key_cert_sign": False,
    "crl_sign": False,
    "encipher_only": False,
    "decipher_only": False,
}


def _intel_chain(field: str) -> list[x509.Certificate]:
    collateral = json.loads(fixture_path("dcap_qvl/tdx_quote_collateral.json").read_text())
    return x509.load_pem_x509_certificates(collateral[field].encode())


_PRINTABLE = _ASN1Type.PrintableString

_SHORT = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.COUNTRY_NAME: "C",
}


def _subject(**changes: str | None) -> x509.Name:
    """Intel's TCB signing subject with attributes changed by short name (None drops one), and an ``OU``
    added when given."""
    attributes = []
    for oid, value in TCB_SIGNER_SUBJECT:
        new = changes.get(_SHORT[oid], value)
        if new is not None:
            attributes.append(x509.NameAttribute(oid, new))
    ou = changes.get("OU")
    if ou is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return x509.Name(attributes)


def _issue(
    authority: SimulatedAuthority,
    *,
    subject: x509.Name | None = None,
    issuer: str = "intel_root",
    ca: bool | None = False,
    usage: dict[str, bool] | None = _USAGE,
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject if subject is not None else _subject())
        .issuer_name(authority.certs[issuer].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW.replace(year=2020))
        .not_valid_after(NOW.replace(year=2040))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if usage is not None:
        builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    return builder.sign(authority.keys[issuer], hashes.SHA256())


def _sim_anchor(authority: SimulatedAuthority) -> TrustAnchor:
    return simulated_anchors(authority)[0]


def test_intels_real_tcb_signing_certificate_passes() -> None:
    for field in ("tcb_info_issuer_chain", "qe_identity_issuer_chain"):
        chain = _intel_chain(field)
        assert chain[0].subject.rfc4514_string().endswith("CN=Intel SGX TCB Signing")
        assert tcb_signer_problems(chain, INTEL) == []


def test_intels_real_pck_certificates_are_no_tcb_signer() -> None:
    ca_chain = _intel_chain("pck_crl_issuer_chain")  # PCK Platform CA -> root
    problems = tcb_signer_problems(ca_chain, INTEL)
    assert len(problems) == 2 and "subject" in problems[0] and "key usage" in problems[1]
    quote = formats.parse(fixture_path("dcap_qvl/tdx_quote").read_bytes())
    assert isinstance(quote, Quote)
    pck_chain = [load_certificate(p) for p in quote.signature.qe.certification.pem_certificates()]
    problems = tcb_signer_problems(pck_chain, INTEL)
    assert any("subject" in p for p in problems)
    assert any("did not issue it directly" in p for p in problems)


def test_the_simulated_tcb_signer_passes_and_keeps_its_simulated_mark(authority: SimulatedAuthority) -> None:
    signer = authority.certs["intel_tcb_signing"]
    chain = [signer, authority.certs["intel_root"]]
    assert tcb_signer_problems(chain, _sim_anchor(authority)) == []
    assert tcb_signer_problems([signer], _sim_anchor(authority)) == []  # the anchor's certificate issued it
    assert "OU=SIMULATED" in signer.subject.rfc4514_string()


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        ({"CN": "Intel SGX TCB Signing SIMULATED"}, "subject"),
        ({"CN": "Intel SGX PCK Certificate"}, "subject"),
        ({"O": "Intel Corporation (SIMULATED by cchet)"}, "subject"),
        ({"C": None}, "subject"),
        ({"L": "Hillsboro"}, "subject"),
        ({"OU": "anything"}, None),  # further attributes are not compared
    ],
)
def test_the_subject_is_pinned(authority: SimulatedAuthority, subject: dict[str, str | None], why: str | None) -> None:
    cert = _issue(authority, subject=_subject(**subject))
    problems = tcb_signer_problems([cert, authority.certs["intel_root"]], _sim_anchor(authority))
    assert problems == [] if why is None else len(problems) == 1 and why in problems[0]


def test_a_repeated_subject_attribute_is_refused(authority: SimulatedAuthority) -> None:
    name = x509.Name([*_subject(), x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX TCB Signing")])
    problems = tcb_signer_problems([_issue(authority, subject=name)], _sim_anchor(authority))
    assert len(problems) == 1 and "subject" in problems[0]


def test_the_simulated_subject_is_decided_on_its_der(authority: SimulatedAuthority) -> None:
    """The simulator's subject (Intel's five attributes and OU=SIMULATED) takes the DER comparison; a name in
    another encoding or with multi-valued RDNs is left to the decoded comparison, which gives the verdict."""
    assert _encoded_as_intel(authority.certs["intel_tcb_signing"].subject.public_bytes())
    assert not _encoded_as_intel(_subject(L="Hillsboro", OU="x").public_bytes())
    repeated = x509.Name([*_subject(), x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX TCB Signing")])
    assert not _encoded_as_intel(repeated.public_bytes())


@pytest.mark.parametrize(
    ("rdns", "why"),
    [
        # Santa Clara as a PrintableString: the same attribute values, another DER encoding
        (
            [
                x509.RelativeDistinguishedName([x509.NameAttribute(oid, value, _type=_PRINTABLE)])
                for oid, value in TCB_SIGNER_SUBJECT
            ],
            None,
        ),
        # the CN hidden in a multi-valued RDN beside a second CN
        (
            [
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX TCB Signing"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX PCK Certificate"),
                    ]
                ),
                *[x509.RelativeDistinguishedName([x509.NameAttribute(o, v)]) for o, v in TCB_SIGNER_SUBJECT[1:]],
            ],
            "subject",
        ),
    ],
)
def test_other_encodings_of_the_subject_get_the_decoded_verdict(
    authority: SimulatedAuthority, rdns: list[x509.RelativeDistinguishedName], why: str | None
) -> None:
    name = x509.Name(rdns)
    assert not _encoded_as_intel(name.public_bytes())
    problems = tcb_signer_problems([_issue(authority, subject=name)], _sim_anchor(authority))
    assert problems == [] if why is None else len(problems) == 1 and why in problems[0]


@pytest.mark.parametrize(
    ("ca", "usage", "why"),
    [
        (True, {**_USAGE, "key_cert_sign": True, "crl_sign": True}, "key usage"),
        (True, _USAGE, "it is a CA"),
        (False, {**_USAGE, "digital_signature": False}, "key usage"),
        (False, {**_USAGE, "crl_sign": True}, "key usage"),
        (False, None, "no key usage"),
        (None, _USAGE, None),  # no basic constraints: an end entity
    ],
)
def test_it_must_be_a_signing_end_entity(
    authority: SimulatedAuthority, ca: bool | None, usage: dict[str, bool] | None, why: str | None
) -> None:
    cert = _issue(authority, ca=ca, usage=usage)
    problems = tcb_signer_problems([cert, authority.certs["intel_root"]], _sim_anchor(authority))
    assert problems == [] if why is None else len(problems) == 1 and why in problems[0]


def test_the_root_must_issue_it_directly(authority: SimulatedAuthority) -> None:
    """A certificate with everything else right, issued by the PCK CA (which the root issued)."""
    cert = _issue(authority, issuer="intel_pck_ca")
    anchor = _sim_anchor(authority)
    chain = [cert, authority.certs["intel_pck_ca"], authority.certs["intel_root"]]
    assert tcb_signer_problems(chain, anchor) == [
        "the root did not issue it directly (another certificate stands between them)"
    ]
    # the PCK CA alone above it, the simulated anchor carrying the root: still not the root
    assert len(tcb_signer_problems(chain[:2], anchor)) == 1


def test_an_empty_chain_is_a_caller_mistake() -> None:
    with pytest.raises(ValueError):
        tcb_signer_problems([], INTEL)


def test_an_old_key_directory_gets_a_pinned_tcb_signer(authority: SimulatedAuthority, tmp_path: Path) -> None:
    """Key directories made before the pin hold a TCB signing certificate named "... SIMULATED": opening
    one re-issues it (same key, same root) in memory, and simulated collateral from it verifies."""
    from cryptography.hazmat.primitives import serialization

    from cchet.attest.collateral import CollateralSource
    from cchet.attest.verify.intel import verify_quote_device
    from cchet.attest.verify.options import default_options

    key_dir = tmp_path / "old"
    fresh = SimulatedAuthority.open(key_dir)
    old_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX TCB Signing SIMULATED"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation (SIMULATED by cchet)"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "SIMULATED"),
        ]
    )
    old = (
        x509.CertificateBuilder()
        .subject_name(old_name)
        .issuer_name(fresh.certs["intel_root"].subject)
        .public_key(fresh.keys["intel_tcb_signing"].public_key())
        .serial_number(4)
        .not_valid_before(NOW.replace(year=2024))
        .not_valid_after(NOW.replace(year=2049))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**_USAGE), critical=True)
        .sign(fresh.keys["intel_root"], hashes.SHA256())
    )
    pem = key_dir / "intel_tcb_signing.pem"
    pem.chmod(0o600)
    pem.write_bytes(old.public_bytes(serialization.Encoding.PEM))

    reopened = SimulatedAuthority.open(key_dir)
    signer = reopened.certs["intel_tcb_signing"]
    assert pem.read_bytes() == old.public_bytes(serialization.Encoding.PEM)  # the directory is not rewritten
    assert signer.public_key() == fresh.keys["intel_tcb_signing"].public_key()
    assert signer.serial_number == 4 and tcb_signer_problems([signer], None) == []

    quote = simulate_tdx_quote(reopened, report_data=bytes(64))
    collateral = simulated_collateral(reopened, quote, now=NOW)
    options = default_options(
        now=NOW,
        anchors=simulated_anchors(reopened),
        intel_collateral=lambda _q: collateral,
        collateral=CollateralSource(),
    )
    device, failures = verify_quote_device(quote, options)
    assert failures == [] and device.tcb_status == "UpToDate"
