"""The simulated vendor PKI: Intel, AMD and NVIDIA chains whose roots say SIMULATED, kept in a key directory.

SIMULATED EVIDENCE PROTECTS NOTHING. These keys sit in ordinary files; anyone who can read the directory can
forge evidence that a simulated-root policy accepts. They exist so that the real formats, verification,
appraisal and key release run end to end without TEE hardware, and so that every result they produce is
stamped SIMULATED.

The directory is created once, atomically (built beside its final name, then renamed), with mode 0700 and
every file 0600; later calls, from this or other processes, load the same keys, so any process with access
can sign. :class:`SimulatedAuthority` holds them:

- Intel: root CA -> PCK Platform CA -> PCK leaf (with the SGX extension), the TCB signing certificate
  (issued by the root with Intel's subject, plus ``OU=SIMULATED``, and a signing end entity's key usage, as
  verification requires of it: :mod:`cchet.attest.verify.tcb_signer`), and the quoting enclave's
  attestation key;
- AMD: ARK -> ASK -> VCEK (the VCEK certificate is issued per reported TCB, as AMD's KDS does);
- NVIDIA: device identity CA -> device leaf whose DICE TcbInfo extension carries the FWID.

Chains are ECDSA throughout (AMD's real ARK and ASK use RSA-PSS; simulated ones use P-384 to stay fast).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cchet.attest.formats.der import (
    TAG_ENUMERATED,
    TAG_OCTET_STRING,
    TAG_SEQUENCE,
    encode_integer,
    encode_oid,
    encode_tlv,
)
from cchet.attest.formats.pck import SGX_EXTENSION_OID
from cchet.attest.simulate.keydir import create_key_dir, pkcs8_pem, write_private
from cchet.attest.verify.tcb_signer import TCB_SIGNER_SUBJECT, tcb_signer_problems

__all__ = [
    "SIMULATED_MARK",
    "SIM_FMSPC",
    "SIM_PCK_COMPONENTS",
    "SIM_PCE_SVN",
    "SimulatedAuthority",
    "default_key_dir",
    "fwid_extension",
]

SIMULATED_MARK = "SIMULATED"
SIM_FMSPC = bytes.fromhex("00906ED50000")
SIM_PCE_ID = bytes(2)
SIM_PCK_COMPONENTS = (4, 4, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
SIM_PCE_SVN = 13
_NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_NOT_AFTER = dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
_KEYS = (
    ("intel_root", ec.SECP256R1),
    ("intel_pck_ca", ec.SECP256R1),
    ("intel_pck", ec.SECP256R1),
    ("intel_tcb_signing", ec.SECP256R1),
    ("intel_attestation", ec.SECP256R1),
    ("amd_ark", ec.SECP384R1),
    ("amd_ask", ec.SECP384R1),
    ("amd_vcek", ec.SECP384R1),
    ("nvidia_root", ec.SECP384R1),
    ("nvidia_leaf", ec.SECP384R1),
)
_CERTS = (
    "intel_root",
    "intel_pck_ca",
    "intel_pck",
    "intel_tcb_signing",
    "amd_ark",
    "amd_ask",
    "nvidia_root",
    "nvidia_leaf",
)
FWID_OID = "2.23.133.5.4.1"
SHA384_OID = "2.16.840.1.101.3.4.2.2"


def default_key_dir() -> Path:
    """``$CCHET_SIM_KEY_DIR``, else ``$XDG_STATE_HOME/cchet/simulated-authority`` (``~/.local/state/...``)."""
    env = os.environ.get("CCHET_SIM_KEY_DIR")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "cchet" / "simulated-authority"


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{org} ({SIMULATED_MARK} by cchet)"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, SIMULATED_MARK),
        ]
    )


def _tcb_signer_name() -> x509.Name:
    """Intel's TCB signing subject, which verification pins, marked SIMULATED by an extra OU."""
    attributes = [x509.NameAttribute(oid, value) for oid, value in reversed(TCB_SIGNER_SUBJECT)]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, SIMULATED_MARK)])


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int,
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    algo = hashes.SHA384() if isinstance(issuer_key.curve, ec.SECP384R1) else hashes.SHA256()
    return builder.sign(issuer_key, algo)


def _sgx_extension(ppid: bytes) -> x509.UnrecognizedExtension:
    def item(suffix: str, value: bytes) -> bytes:
        return encode_tlv(TAG_SEQUENCE, encode_oid(f"{SGX_EXTENSION_OID}.{suffix}") + value)

    tcb = b"".join(item(f"2.{i + 1}", encode_integer(v)) for i, v in enumerate(SIM_PCK_COMPONENTS))
    tcb += item("2.17", encode_integer(SIM_PCE_SVN))
    tcb += item("2.18", encode_tlv(TAG_OCTET_STRING, bytes(SIM_PCK_COMPONENTS)))
    body = b"".join(
        (
            item("1", encode_tlv(TAG_OCTET_STRING, ppid)),
            item("2", encode_tlv(TAG_SEQUENCE, tcb)),
            item("3", encode_tlv(TAG_OCTET_STRING, SIM_PCE_ID)),
            item("4", encode_tlv(TAG_OCTET_STRING, SIM_FMSPC)),
            item("5", encode_integer(0, TAG_ENUMERATED)),
        )
    )
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), encode_tlv(TAG_SEQUENCE, body))


def fwid_extension(fwid: bytes) -> x509.UnrecognizedExtension:
    """A TCG DICE TcbInfo extension whose last 48 bytes are ``fwid`` (as NVIDIA's leaf certificates carry)."""
    fwid_entry = encode_tlv(TAG_SEQUENCE, encode_oid(SHA384_OID) + encode_tlv(TAG_OCTET_STRING, fwid))
    value = encode_tlv(TAG_SEQUENCE, encode_tlv(0xA6, fwid_entry))
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(FWID_OID), value)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _fill(tmp: Path) -> None:
    keys = {name: ec.generate_private_key(curve()) for name, curve in _KEYS}
    for name, key in keys.items():
        write_private(tmp / f"{name}.key", pkcs8_pem(key))
    names = {
        "intel_root": _name(f"Intel SGX Root CA {SIMULATED_MARK}", "Intel Corporation"),
        "intel_pck_ca": _name(f"Intel SGX PCK Platform CA {SIMULATED_MARK}", "Intel Corporation"),
        "intel_pck": _name(f"Intel SGX PCK Certificate {SIMULATED_MARK}", "Intel Corporation"),
        "intel_tcb_signing": _tcb_signer_name(),
        "amd_ark": _name(f"ARK-Genoa {SIMULATED_MARK}", "Advanced Micro Devices"),
        "amd_ask": _name(f"SEV-Genoa {SIMULATED_MARK}", "Advanced Micro Devices"),
        "nvidia_root": _name(f"NVIDIA Device Identity CA {SIMULATED_MARK}", "NVIDIA"),
        "nvidia_leaf": _name(f"GH100 A01 GSP FMC LF {SIMULATED_MARK}", "NVIDIA"),
    }
    fwid = hashlib.sha384(b"cchet simulated GPU firmware " + os.urandom(16)).digest()
    chip_id = os.urandom(64)
    plan = (
        ("intel_root", "intel_root", True, ()),
        ("intel_pck_ca", "intel_root", True, ()),
        ("intel_pck", "intel_pck_ca", False, (_sgx_extension(os.urandom(16)),)),
        ("intel_tcb_signing", "intel_root", False, ()),
        ("amd_ark", "amd_ark", True, ()),
        ("amd_ask", "amd_ark", True, ()),
        ("nvidia_root", "nvidia_root", True, ()),
        ("nvidia_leaf", "nvidia_root", False, (fwid_extension(fwid),)),
    )
    for serial, (name, issuer, ca, exts) in enumerate(plan, start=1):
        cert = _issue(names[name], keys[name], names[issuer], keys[issuer], ca=ca, serial=serial, extensions=exts)
        write_private(tmp / f"{name}.pem", _pem(cert))
    write_private(tmp / "amd_chip_id.bin", chip_id)
    write_private(tmp / "nvidia_fwid.bin", fwid)


@dataclass(frozen=True)
class SimulatedAuthority:
    """The simulated vendor keys and certificates loaded from ``key_dir`` (see the module docstring)."""

    key_dir: Path
    keys: dict[str, ec.EllipticCurvePrivateKey]
    certs: dict[str, x509.Certificate]
    amd_chip_id: bytes
    nvidia_fwid: bytes

    @classmethod
    def open(cls, key_dir: str | os.PathLike[str] | None = None) -> SimulatedAuthority:
        """Loads the authority in ``key_dir`` (default :func:`default_key_dir`), creating it first if absent.

        Safe to call from several processes at once: exactly one creation wins and all load its keys. A
        directory made before verification pinned Intel's TCB signing subject gets, in memory only, a TCB
        signing certificate re-issued by its root for its key with that subject (each process its own; all
        verify alike); the directory is never rewritten.
        Raises ``OSError`` when the directory cannot be created or read, ``ValueError`` when a file in it is
        not what this module wrote.
        """
        target = Path(key_dir) if key_dir is not None else default_key_dir()
        if not (target / "nvidia_fwid.bin").exists():
            create_key_dir(target, ".sim-authority-", "nvidia_fwid.bin", _fill)
        keys = {}
        for name, _curve in _KEYS:
            key = serialization.load_pem_private_key((target / f"{name}.key").read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{target / name}.key is not an EC private key")
            keys[name] = key
        certs = {n: x509.load_pem_x509_certificate((target / f"{n}.pem").read_bytes()) for n in _CERTS}
        old_signer = certs["intel_tcb_signing"]
        if tcb_signer_problems([old_signer], None):  # made before verification pinned the TCB signer
            certs["intel_tcb_signing"] = _issue(
                _tcb_signer_name(),
                keys["intel_tcb_signing"],
                certs["intel_root"].subject,
                keys["intel_root"],
                ca=False,
                serial=old_signer.serial_number,
            )
        return cls(
            key_dir=target,
            keys=keys,
            certs=certs,
            amd_chip_id=(target / "amd_chip_id.bin").read_bytes(),
            nvidia_fwid=(target / "nvidia_fwid.bin").read_bytes(),
        )

    def pem(self, *names: str) -> bytes:
        """The named certificates as concatenated PEM, in the order given."""
        return b"".join(_pem(self.certs[n]) for n in names)

    def der(self, name: str) -> bytes:
        return self.certs[name].public_bytes(serialization.Encoding.DER)

    def sign(self, name: str, data: bytes) -> bytes:
        """A DER ECDSA signature by key ``name`` (SHA-256 on P-256 keys, SHA-384 on P-384 keys)."""
        key = self.keys[name]
        algo = hashes.SHA384() if isinstance(key.curve, ec.SECP384R1) else hashes.SHA256()
        return key.sign(data, ec.ECDSA(algo))

    def issue_vcek(self, tcb: tuple[int, int, int, int], product: str = "Genoa") -> x509.Certificate:
        """A VCEK certificate for the persistent VCEK key at TCB (bootloader, tee, snp, microcode)."""
        arc = "1.3.6.1.4.1.3704.1"
        ints = {"3.1": tcb[0], "3.2": tcb[1], "3.3": tcb[2], "3.8": tcb[3], "1": 0}
        exts: list[x509.ExtensionType] = [
            x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{arc}.{k}"), encode_integer(v)) for k, v in ints.items()
        ]
        exts.append(x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{arc}.2"), encode_tlv(0x16, product.encode())))
        exts.append(x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{arc}.4"), self.amd_chip_id))
        serial = int.from_bytes(hashlib.sha256(bytes(tcb)).digest()[:8], "big") | 1
        return _issue(
            _name(f"SEV-VCEK {SIMULATED_MARK}", "Advanced Micro Devices"),
            self.keys["amd_vcek"],
            self.certs["amd_ask"].subject,
            self.keys["amd_ask"],
            ca=False,
            serial=serial,
            extensions=tuple(exts),
        )
