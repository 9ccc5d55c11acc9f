"""Certification paths are built from the leaf through an unordered pool (cchet/attest/verify/chain.py):
bundles in any order, with duplicates and unrelated certificates, verify for every vendor; loops, missing
issuers, issuers with another key identifier and over-long paths fail with a clear reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cchet.attest import formats
from cchet.attest.collateral import CollateralSource
from cchet.attest.formats.certchain import der_to_pem, parse_pem_chain
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.rawsig import raw_from_der
from cchet.attest.simulate import SimulatedAuthority
from cchet.attest.simulate.snp import SIM_SNP_TCB, simulate_snp_report
from cchet.attest.simulate.spdm import simulate_spdm_report
from cchet.attest.simulate.verifier import simulated_anchors
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.amd_certs import load_amd_certificates
from cchet.attest.verify.chain import MAX_PATH_LENGTH, verify_chain
from cchet.attest.verify.chain_order import order_chain
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.gpu import check_gpu
from cchet.attest.verify.options import NoCollateral, TrustAnchor, default_options, pinned_anchors
from cchet.attest.verify.roots import AMD_ARKS, INTEL_SGX_ROOT, NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT
from cchet.attest.verify.snp import check_amd_chain, check_snp
from cchet.errors import CertificateChainError
from tests.attest.conftest import NOW
from tests.conftest import fixture_path

SDK = "nvidia_attestation_sdk/unit_testdata/"


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _issue(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int = 1,
    extensions: tuple[x509.Extension[x509.ExtensionType], ...] = (),
    key_ids: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if key_ids:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    for ext in extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(issuer_key, hashes.SHA384())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _failures_of(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


# AMD: a VLEK with the ASK + ARK + ASVK bundle some deployments ship ----------------------------------------


@dataclasses.dataclass(frozen=True)
class Vlek:
    report: SnpReport
    vlek: x509.Certificate
    ask: x509.Certificate
    ark: x509.Certificate
    asvk: x509.Certificate


@pytest.fixture(scope="module")
def vlek(authority: SimulatedAuthority) -> Vlek:
    """A SIMULATED report signed by a VLEK that an ASVK issued under the simulated ARK (the simulator itself
    issues only VCEKs): the VLEK carries the simulated VCEK's AMD TCB extensions, so only the key type and the
    chain differ."""
    ark_key, ark = authority.keys["amd_ark"], authority.certs["amd_ark"]
    asvk_key, vlek_key = _key(), _key()
    asvk = _issue("SEV-VLEK-Genoa SIMULATED", asvk_key, ark.subject, ark_key, ca=True, serial=77, key_ids=False)
    vcek = authority.issue_vcek(SIM_SNP_TCB)
    amd_extensions = tuple(e for e in vcek.extensions if e.oid.dotted_string.startswith("1.3.6.1.4.1.3704.1."))
    leaf = _issue("SEV-VLEK", vlek_key, asvk.subject, asvk_key, ca=False, extensions=amd_extensions, key_ids=False)
    report, _ = simulate_snp_report(authority, report_data=bytes(range(64)))
    unsigned = dataclasses.replace(report, flags=report.flags | (1 << 2))  # signed by a VLEK (flags bits 2..4 = 1)
    assert unsigned.signing_key == "vlek"
    der = vlek_key.sign(unsigned.signed_bytes(), ec.ECDSA(hashes.SHA384()))
    sig = raw_from_der(der, 72, byteorder="little")
    signed = dataclasses.replace(unsigned, signature_r=sig[:72], signature_s=sig[72:])
    return Vlek(signed, leaf, authority.certs["amd_ask"], ark, asvk)


@pytest.mark.parametrize("order", list(itertools.permutations(("ask", "ark", "asvk"))), ids="-".join)
def test_vlek_report_verifies_with_an_ask_ark_asvk_bundle_in_any_order(
    authority: SimulatedAuthority, vlek: Vlek, order: tuple[str, ...]
) -> None:
    bundle = _pem(*(getattr(vlek, name) for name in order))
    check = check_snp(vlek.report, _pem(vlek.vlek) + bundle, simulated_anchors(authority), NOW)
    assert check.failures == ()
    assert check.anchor is not None and check.anchor.certificate_der == authority.der("amd_ark")


class _Kds(NoCollateral):
    """A collateral source whose KDS answers the VLEK chain request with the ASK + ARK + ASVK bundle."""

    def __init__(self, vlek: Vlek) -> None:
        self.vlek = vlek

    def amd_chain(self, product: str, key: str, now: dt.datetime) -> bytes:
        assert (product, key) == ("Genoa", "vlek")
        return _pem(self.vlek.ask, self.vlek.ark, self.vlek.asvk)


def test_vlek_evidence_without_its_asvk_gets_the_chain_from_collateral(
    authority: SimulatedAuthority, vlek: Vlek
) -> None:
    """Evidence with the VLEK, the ASK and the ARK holds three certificates but not the VLEK's issuer: the
    KDS chain is fetched for it (not only when fewer than three certificates came)."""
    options = default_options(now=NOW, anchors=simulated_anchors(authority), collateral=_Kds(vlek))
    _, failures = verify_snp_device(vlek.report, _pem(vlek.vlek, vlek.ask, vlek.ark), options)
    assert failures == []


def test_vlek_report_verifies_with_the_bundle_as_collateral(authority: SimulatedAuthority, vlek: Vlek) -> None:
    """The evidence carries only the VLEK; the collateral source answers the chain request with the bundle."""
    options = default_options(now=NOW, anchors=simulated_anchors(authority), collateral=_Kds(vlek))
    device, failures = verify_snp_device(vlek.report, _pem(vlek.vlek), options)
    assert failures == [] and device.anchor == TrustAnchor("amd", authority.der("amd_ark"), simulated=True).sha256


def test_a_vlek_does_not_verify_through_the_ask(authority: SimulatedAuthority, vlek: Vlek) -> None:
    """Building by name never takes the ASK for a VLEK's issuer: without the ASVK the issuer is missing."""
    check = check_snp(vlek.report, _pem(vlek.vlek, vlek.ask, vlek.ark), simulated_anchors(authority), NOW)
    assert _failures_of(list(check.failures)) == {"amd.chain"}
    assert any("missing issuer: no certificate of CN=SEV-VLEK-Genoa SIMULATED" in f for f in check.failures)


@pytest.mark.parametrize(("product", "leaf"), [("Milan", "vcek_milan.der"), ("Turin", "vcek_turin.der")])
def test_real_vcek_with_a_trustee_ask_ark_asvk_bundle_verifies_rsa_pss_to_the_pinned_ark(
    product: str, leaf: str
) -> None:
    """trustee ships ASK, ARK and ASVK in one file; the ASVK is unrelated to a VCEK and is ignored, and the
    pinned-root rules (RSA-PSS, the ASK being AMD's issuer of VCEKs) hold on the path built."""
    bundle = fixture_path(f"amd_roots/trustee_{product.lower()}_ask_ark_asvk.pem").read_bytes()
    certs = load_amd_certificates(der_to_pem(fixture_path(f"virtee_sev/{leaf}").read_bytes()) + bundle)
    at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    anchor, failures = check_amd_chain(certs, pinned_anchors(), at, "vcek")
    assert failures == [] and anchor is not None and anchor.fingerprint == AMD_ARKS[product].sha256
    _, failures = check_amd_chain(certs, pinned_anchors(), at, "vlek")
    assert _failures_of(failures) == {"amd.chain"}  # the ASK on the path never certifies a VLEK


def test_real_milan_report_verifies_with_the_trustee_bundle_in_any_order() -> None:
    report = formats.parse(fixture_path("virtee_sev/report_milan.hex").read_bytes())
    assert isinstance(report, SnpReport)
    vcek = der_to_pem(fixture_path("virtee_sev/vcek_milan.der").read_bytes())
    ders = parse_pem_chain(fixture_path("amd_roots/trustee_milan_ask_ark_asvk.pem").read_bytes()).ders
    options = default_options(now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), collateral=CollateralSource())
    for order in itertools.permutations(ders):
        _, failures = verify_snp_device(report, vcek + b"".join(der_to_pem(d) for d in order), options)
        assert failures == []


# Intel and NVIDIA: shuffled real chains --------------------------------------------------------------------


def test_a_shuffled_intel_pck_chain_verifies_to_the_pinned_root() -> None:
    quote = formats.parse(fixture_path("dcap_qvl/tdx_quote").read_bytes())
    assert isinstance(quote, Quote)
    leaf, ca, root = [x509.load_pem_x509_certificate(p) for p in quote.signature.qe.certification.pem_certificates()]
    at = dt.datetime(2025, 7, 19, 10, 0, 34, tzinfo=dt.UTC)
    for pool in ([root, ca], [root, ca, root, leaf], [ca, _unrelated(), root]):
        reached, failures = verify_chain([leaf, *pool], pinned_anchors(), at, what="pck_chain", check="intel.pck_chain")
        assert failures == [] and reached is not None and reached.fingerprint == INTEL_SGX_ROOT.sha256


def test_a_real_quote_with_its_pck_chain_shuffled_verifies_and_checks_revocation_on_the_path() -> None:
    """The whole quote check, CRLs included: the PCK CRL is checked against the leaf's issuer on the built
    path and the root CRL against the root it reached, never against whatever certificate sits at a position."""
    from cchet.attest.verify.dcap import check_quote
    from tests.conformance.intel_material import fixture_json

    quote = formats.parse(fixture_path("dcap_qvl/tdx_quote").read_bytes())
    assert isinstance(quote, Quote)
    leaf, ca, root = quote.signature.qe.certification.pem_certificates()
    collateral = fixture_json("dcap_qvl/tdx_quote_collateral.json")
    at = dt.datetime(2025, 7, 19, 10, 0, 34, tzinfo=dt.UTC)
    for order in ([leaf, root, ca], [leaf, root, ca, root, leaf]):
        certification = dataclasses.replace(quote.signature.qe.certification, data=b"".join(order))
        shuffled = dataclasses.replace(
            quote,
            signature=dataclasses.replace(
                quote.signature, qe=dataclasses.replace(quote.signature.qe, certification=certification)
            ),
        )
        found = check_quote(shuffled, pinned_anchors(), at, collateral)
        assert found.failures == () and found.tcb_status == "UpToDate", found.failures


@pytest.mark.parametrize(
    ("name", "chain"),
    [
        (SDK + "hopperAttestationReport.txt", SDK + "hopperCertChain.txt"),
        (
            SDK + "sample_attestation_data/gpu/blackwellAttestationReport.txt",
            SDK + "sample_attestation_data/gpu/blackwellCertChain.txt",
        ),
    ],
)
def test_a_shuffled_nvidia_device_chain_verifies_to_the_pinned_root(name: str, chain: str) -> None:
    report = formats.parse(fixture_path(name).read_bytes())
    assert isinstance(report, SpdmReport)
    leaf, *rest = parse_pem_chain(fixture_path(chain).read_bytes()).ders
    at = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    for pool in (rest[::-1], rest[1:] + rest[:1], [rest[2], _unrelated_der(), *rest]):
        pem = b"".join(der_to_pem(d) for d in (leaf, *pool))
        check = check_gpu(report, pem, pinned_anchors(), at, what="gpu0")
        assert check.failures == ()
        assert check.anchor is not None and check.anchor.fingerprint == NVIDIA_DEVICE_ROOT.sha256


def test_a_shuffled_nvidia_rim_signing_chain_verifies_to_the_pinned_rim_root() -> None:
    import base64
    import re

    xml = fixture_path(SDK + "NV_GPU_DRIVER_GH100_550.144.03.xml").read_bytes()
    found = re.findall(rb"<(?:ds:)?X509Certificate>(.*?)</", xml, re.S)
    leaf, *rest = [x509.load_der_x509_certificate(base64.b64decode(b"".join(b.split()))) for b in found]
    assert len(rest) == 3
    reached, failures = verify_chain(
        [leaf, *rest[::-1]],
        pinned_anchors(),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        what="rim",
        check="nvidia.rim_chain",
    )
    assert failures == [] and reached is not None and reached.fingerprint == NVIDIA_RIM_ROOT.sha256


def test_an_unrelated_certificate_in_a_simulated_gpu_chain_is_ignored(authority: SimulatedAuthority) -> None:
    report, chain = simulate_spdm_report(authority, nonce=bytes(32))
    leaf, root = parse_pem_chain(chain).ders
    pem = b"".join(der_to_pem(d) for d in (leaf, authority.der("intel_root"), _unrelated_der(), root, leaf))
    check = check_gpu(report, pem, simulated_anchors(authority), NOW, what="gpu0")
    assert check.failures == () and check.anchor is not None


# Paths that must fail, with their reason ------------------------------------------------------------------


def _unrelated() -> x509.Certificate:
    key = _key()
    return _issue("Unrelated CA", key, _name("Unrelated CA"), key, ca=True)


def _unrelated_der() -> bytes:
    return _unrelated().public_bytes(serialization.Encoding.DER)


def _anchor() -> tuple[TrustAnchor, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    root = _issue("Test Root SIMULATED", key, _name("Test Root SIMULATED"), key, ca=True)
    return TrustAnchor("nvidia", root.public_bytes(serialization.Encoding.DER), simulated=True), root, key


def test_a_loop_fails_naming_the_loop() -> None:
    anchor, _, _ = _anchor()
    a_key, b_key, leaf_key = _key(), _key(), _key()
    a = _issue("A", a_key, _name("B"), b_key, ca=True)
    b = _issue("B", b_key, _name("A"), a_key, ca=True)
    leaf = _issue("Leaf", leaf_key, a.subject, a_key, ca=False)
    reached, failures = verify_chain([leaf, b, a], [anchor], NOW, what="gpu", check="nvidia.chain")
    assert reached is None
    assert failures == ["gpu: loop: the issuer of certificate 2 (CN=B) is already on the path"]
    with pytest.raises(CertificateChainError, match="loop"):
        raise_failures(failures)


def test_a_missing_issuer_fails_naming_it() -> None:
    anchor, root, root_key = _anchor()
    ca_key, leaf_key = _key(), _key()
    ca = _issue("Intermediate", ca_key, root.subject, root_key, ca=True)
    leaf = _issue("Leaf", leaf_key, ca.subject, ca_key, ca=False)
    reached, failures = verify_chain([leaf, _unrelated(), root], [anchor], NOW, what="gpu", check="nvidia.chain")
    assert reached is None
    assert failures == ["gpu: missing issuer: no certificate of CN=Intermediate issues certificate 0 (CN=Leaf)"]
    with pytest.raises(CertificateChainError, match="missing issuer"):
        raise_failures(failures)


def test_an_issuer_with_another_key_identifier_is_not_taken() -> None:
    """Same name, another key: its subject key identifier differs from the leaf's authority key identifier,
    so it is not the issuer even when it is the only certificate of that name."""
    anchor, root, root_key = _anchor()
    ca_key, leaf_key = _key(), _key()
    ca = _issue("Intermediate", ca_key, root.subject, root_key, ca=True)
    impostor = _issue("Intermediate", _key(), root.subject, root_key, ca=True)
    leaf = _issue("Leaf", leaf_key, ca.subject, ca_key, ca=False)
    reached, failures = verify_chain([leaf, impostor, root], [anchor], NOW, what="gpu", check="nvidia.chain")
    assert reached is None and failures[-1].startswith("gpu: missing issuer")
    reached, failures = verify_chain([leaf, impostor, ca, root], [anchor], NOW, what="gpu", check="nvidia.chain")
    assert failures == [] and reached == anchor


def _ladder(length: int) -> tuple[TrustAnchor, list[x509.Certificate]]:
    """A leaf and ``length - 2`` intermediates under a simulated root, leaf first, root last."""
    anchor, root, key = _anchor()
    certs = [root]
    for i in range(length - 1):
        child_key = _key()
        certs.insert(0, _issue(f"Level {i}", child_key, certs[0].subject, key, ca=i < length - 2))
        key = child_key
    return anchor, certs


def test_a_path_longer_than_the_limit_fails() -> None:
    anchor, certs = _ladder(MAX_PATH_LENGTH)
    reached, failures = verify_chain(certs[:1] + certs[:0:-1], [anchor], NOW, what="x", check="nvidia.chain")
    assert failures == [] and reached == anchor
    anchor, certs = _ladder(MAX_PATH_LENGTH + 1)
    reached, failures = verify_chain(certs, [anchor], NOW, what="x", check="nvidia.chain")
    assert reached is None
    assert failures == [f"x: path longer than {MAX_PATH_LENGTH} certificates (MAX_PATH_LENGTH) without a trusted root"]


def test_loose_certificates_are_put_leaf_first() -> None:
    """``cchet verify --certs``: a folder of a VCEK and the ASK/ARK/ASVK bundle in any order, the VCEK first
    (the ASVK issues nothing here either, but it is a CA)."""
    bundle = load_amd_certificates(fixture_path("amd_roots/trustee_milan_ask_ark_asvk.pem").read_bytes())
    vcek = load_amd_certificates(fixture_path("virtee_sev/vcek_milan.der").read_bytes())
    ordered = order_chain([*bundle[::-1], *vcek, bundle[0]])
    subjects = [c.subject.rfc4514_string() for c in ordered]
    assert [s.split(",")[0] for s in subjects] == ["CN=SEV-VCEK", "CN=SEV-Milan", "CN=ARK-Milan", "CN=SEV-VLEK-Milan"]


# -- names are decoded on first access ---------------------------------------------------------------------


def _with_undecodable_name(cert: x509.Certificate, which: str, value: int) -> x509.Certificate:
    """``cert`` with one byte of the first attribute of its issuer (or subject) name changed so that the
    certificate still loads but its name fails to decode when first read (as a byte flip in evidence does)."""
    from cchet.attest.formats.der import tlv_span

    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    _, start, _ = tlv_span(der)
    _, tbs, _ = tlv_span(der, start)
    tag, _, end = tlv_span(der, tbs)
    if tag == 0xA0:  # version, then the serial number
        _, _, end = tlv_span(der, end)
    _, _, name = tlv_span(der, end)  # the signature algorithm; the issuer starts here
    if which == "subject":
        _, _, validity = tlv_span(der, name)
        _, _, name = tlv_span(der, validity)
    _, rdn, _ = tlv_span(der, name)  # into the Name SEQUENCE, its first RDN SET
    _, attribute, _ = tlv_span(der, rdn)
    _, oid, _ = tlv_span(der, attribute)  # the AttributeTypeAndValue SEQUENCE: OID, then the value
    _, _, at = tlv_span(der, oid)
    der[at if value in (0x03, 0x0D) else at + 2] = value  # the value's tag, or its first content byte
    if value == 0x03:  # a BIT STRING: its first content byte counts unused bits
        der[at + 2] = 0
    changed = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises((ValueError, TypeError)):
        _ = changed.issuer if which == "issuer" else changed.subject
    return changed


# an attribute value's tag made RELATIVE-OID; made BIT STRING (cryptography pairs it with one type only); bad UTF-8
@pytest.mark.parametrize("value", [0x0D, 0x03, 0xFF])
def test_a_name_that_does_not_decode_is_a_failure_not_a_crash(authority: SimulatedAuthority, value: int) -> None:
    """Found by the conformance fuzzing of real Azure evidence: a changed byte in a certificate's issuer name
    passed decoding and raised from the message naming the missing issuer."""
    leaf = _with_undecodable_name(authority.certs["intel_pck"], "issuer", value)
    chain = [leaf, authority.certs["intel_pck_ca"]]
    anchor, failures = verify_chain(chain, simulated_anchors(authority), NOW, what="chain", check="intel.pck_chain")
    assert anchor is None and any("an undecodable issuer name" in f for f in failures), failures


def test_a_tcb_signer_whose_subject_does_not_decode_is_refused(authority: SimulatedAuthority) -> None:
    from cchet.attest.verify.tcb_signer import tcb_signer_problems

    signer = _with_undecodable_name(authority.certs["intel_tcb_signing"], "subject", 0x0D)
    (anchor,) = (a for a in simulated_anchors(authority) if a.vendor == "intel")
    assert tcb_signer_problems([signer], anchor) == ["its subject does not decode"]


@pytest.mark.parametrize("at", [38, 51])  # a byte of the PSS parameters' structure; of the MGF1 hash's OID
def test_an_amd_certificate_whose_signature_parameters_do_not_decode_is_not_rsa_pss(at: int) -> None:
    """The real Azure VCEK with a changed byte in its outer signature algorithm's parameters (decoded on first
    access): not RSASSA-PSS with SHA-384, so the chain check fails instead of raising."""
    from cchet.attest.formats.der import tlv_span
    from cchet.attest.verify.snp import signed_rsa_pss_sha384
    from tests.conftest import fixture_path

    vcek = x509.load_pem_x509_certificate(fixture_path("trustee/az_snp_vtpm/vcek.pem").read_bytes())
    assert signed_rsa_pss_sha384(vcek)
    der = bytearray(vcek.public_bytes(serialization.Encoding.DER))
    _, start, _ = tlv_span(der)
    _, _, algorithm = tlv_span(der, start)  # the end of tbsCertificate: the signature algorithm
    der[algorithm + at] ^= 1
    assert not signed_rsa_pss_sha384(x509.load_der_x509_certificate(bytes(der)))


def test_a_crl_with_an_unused_signature_bit_is_malformed(authority: SimulatedAuthority) -> None:
    from cchet.attest.formats.der import tlv_span
    from cchet.attest.simulate import simulate_tdx_quote, simulated_collateral
    from cchet.attest.verify.crl import verify_crl

    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    for _ in range(40):  # ECDSA signs afresh each time: take a CRL whose signature ends in a 0 bit
        der = bytearray(bytes.fromhex(simulated_collateral(authority, quote, now=NOW)["root_ca_crl"]))
        if der[-1] & 1 == 0:  # then one unused bit leaves the bytes cryptography reads as they were
            break
    _, start, _ = tlv_span(der)
    _, _, tbs_end = tlv_span(der, start)
    _, _, algorithm_end = tlv_span(der, tbs_end)
    _, bits, _ = tlv_span(der, algorithm_end)
    root = authority.certs["intel_root"]
    assert verify_crl(bytes(der), root, NOW, what="crl", check="intel.crl")[1] == []
    der[bits] = 1
    crl, failures = verify_crl(bytes(der), root, NOW, what="crl", check="intel.crl")
    assert crl is None and len(failures) == 1 and "unused bits" in failures[0]
