"""SIMULATED Hygon CSV: an HRK -> HSK -> CEK -> PEK chain of SM2 keys in Hygon's own certificate formats, and V1 or
V2 report wrappers signed by the PEK.

SIMULATED EVIDENCE PROTECTS NOTHING. The keys sit in ordinary files in the ``hygon-csv`` folder of the
:class:`~cchet.attest.simulate.authority.SimulatedAuthority`'s key directory, created on first use (atomically:
built beside, then renamed; mode 0700, files 0600); anyone who can read it can forge CSV evidence that a
simulated-root policy accepts. Every certificate's ID says SIMULATED (``HYGON-SSD-PEK-SIMULATED``...), as does the
chip serial number (``SIMULATED-...``) and the trust anchor's name, so reports and results say so.

Reports have the real layouts (:mod:`cchet.attest.tees.csv.report`): V2 by default (extended, unmasked, RTMRs),
or V1 (fields masked with a random ``anonce``). The signer block is in clear, as a guest's attester leaves it
after checking the firmware's MAC (``masked_signer=True`` gives it as the firmware returns it, MAC included).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from cchet.attest.simulate.keydir import create_key_dir, write_private
from cchet.attest.tees.csv import sm2
from cchet.attest.tees.csv.certs import (
    ALGO_SM2_SIGN,
    CURVE_SM2,
    USAGE_CEK,
    USAGE_HRK,
    USAGE_HSK,
    USAGE_INVALID,
    USAGE_PEK,
    CaCertificate,
    CsvCertificate,
    CsvSignatureSlot,
    armor,
    parse_ca_certificate,
    parse_csv_certificate,
)
from cchet.attest.tees.csv.report import (
    MAGIC_EXT,
    MAGIC_ZERO,
    POLICY_NODBG,
    CsvReport,
    SignerBlock,
    TeeInfo,
    mask,
)

if TYPE_CHECKING:
    from cchet.attest.simulate.authority import SimulatedAuthority
    from cchet.attest.verify.options import TrustAnchor

__all__ = [
    "ANCHOR_NAME",
    "DEFAULT_POLICY",
    "FOLDER",
    "SIM_BUILD",
    "SIM_FIRMWARE",
    "SimulatedHygon",
    "simulate_csv_report",
    "signer_mac",
]

FOLDER = "hygon-csv"
ANCHOR_NAME = "Hygon Root Key (HRK) SIMULATED by cchet"
DEFAULT_POLICY = 0x45
"""NODBG, ES and CSV3 set (as the real fixture's guest)."""
SIM_FIRMWARE = (1, 4)
SIM_BUILD = 2024
_ROLES = ("hrk", "hsk", "cek", "pek")
_LOCK = threading.Lock()
_OPENED: dict[tuple[str, int, int], SimulatedHygon] = {}


def _coord(v: int) -> bytes:
    return v.to_bytes(72, "little")


def _uid(text: str) -> tuple[int, bytes]:
    raw = text.encode()
    return len(raw), raw.ljust(254, b"\0")


def _ca(
    key: tuple[int, int, int], usage: int, name: str, key_id: bytes, certifier: tuple[int, bytes, bytes]
) -> CaCertificate:
    """A CA-format certificate for ``key``, signed by ``certifier`` (its private scalar, key id and ID)."""
    _d, x, y = key
    size, uid = _uid(name)
    d_signer, signer_kid, signer_uid = certifier
    unsigned = CaCertificate(
        version=1,
        key_id=key_id,
        certifying_id=signer_kid,
        usage=usage,
        reserved0=bytes(24),
        curve=CURVE_SM2,
        x=_coord(x),
        y=_coord(y),
        uid_size=size,
        user_id=uid,
        reserved1=bytes(108),
        signature_r=bytes(72),
        signature_s=bytes(72),
        reserved2=bytes(112),
    )
    r, s = sm2.sign(d_signer, signer_uid, unsigned.body())
    return parse_ca_certificate(unsigned.to_bytes()[:576] + _coord(r) + _coord(s) + bytes(112))


def _empty_slot() -> CsvSignatureSlot:
    return CsvSignatureSlot(USAGE_INVALID, 0, bytes(72), bytes(72), bytes(368))


def _csv(
    key: tuple[int, int, int], usage: int, name: str, signer: tuple[int, int, bytes], firmware: tuple[int, int]
) -> CsvCertificate:
    """A CSV-format certificate for ``key``, slot 0 signed by ``signer`` (its private scalar, usage and ID)."""
    _d, x, y = key
    size, uid = _uid(name)
    unsigned = CsvCertificate(
        version=1,
        firmware_major=firmware[0],
        firmware_minor=firmware[1],
        reserved0=0,
        usage=usage,
        algo=ALGO_SM2_SIGN,
        curve=CURVE_SM2,
        x=_coord(x),
        y=_coord(y),
        uid_size=size,
        user_id=uid,
        sid=bytes(16),
        reserved1=bytes(608),
        slots=(_empty_slot(), _empty_slot()),
    )
    d_signer, signer_usage, signer_uid = signer
    r, s = sm2.sign(d_signer, signer_uid, unsigned.body())
    slot = CsvSignatureSlot(signer_usage, ALGO_SM2_SIGN, _coord(r), _coord(s), bytes(368))
    return parse_csv_certificate(unsigned.body() + slot.to_bytes() + _empty_slot().to_bytes())


def _fill(tmp: Path) -> None:
    keys = {role: sm2.generate() for role in _ROLES}
    ids = {role: f"HYGON-SSD-{role.upper()}-SIMULATED" for role in _ROLES}
    hrk_kid, hsk_kid = os.urandom(16), os.urandom(16)
    hrk = _ca(keys["hrk"], USAGE_HRK, ids["hrk"], hrk_kid, (keys["hrk"][0], hrk_kid, ids["hrk"].encode()))
    hsk = _ca(keys["hsk"], USAGE_HSK, ids["hsk"], hsk_kid, (keys["hrk"][0], hrk_kid, ids["hrk"].encode()))
    cek = _csv(keys["cek"], USAGE_CEK, ids["cek"], (keys["hsk"][0], USAGE_HSK, ids["hsk"].encode()), SIM_FIRMWARE)
    pek = _csv(keys["pek"], USAGE_PEK, ids["pek"], (keys["cek"][0], USAGE_CEK, ids["cek"].encode()), SIM_FIRMWARE)
    certs: dict[str, CaCertificate | CsvCertificate] = {"hrk": hrk, "hsk": hsk, "cek": cek, "pek": pek}
    for role, cert in certs.items():
        write_private(tmp / f"{role}.key", f"{keys[role][0]:064x}\n".encode())
        write_private(tmp / f"{role}.cert", cert.to_bytes())
    write_private(tmp / "serial.txt", f"SIMULATED-{os.urandom(4).hex().upper()}\n".encode())

@dataclass(frozen=True)
class SimulatedHygon:
    """The simulated Hygon keys and certificates of one key directory (see the module docstring)."""

    key_dir: Path
    keys: dict[str, int]
    hrk: CaCertificate
    hsk: CaCertificate
    cek: CsvCertificate
    pek: CsvCertificate
    serial: str

    def __repr__(self) -> str:  # never print the private scalars
        return f"SimulatedHygon(key_dir={str(self.key_dir)!r}, serial={self.serial!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("simulated Hygon keys are not pickled; open them from their key directory")

    @classmethod
    def open(cls, authority: SimulatedAuthority) -> SimulatedHygon:
        """The simulated Hygon chain kept beside ``authority``'s keys, created on first use (loaded once per
        process). Raises ``OSError`` when the folder cannot be created or read, ``ValueError`` when a file in it
        is not what this module wrote."""
        target = Path(authority.key_dir) / FOLDER
        if not (target / "serial.txt").exists():
            create_key_dir(target, ".sim-hygon-", "serial.txt", _fill)
        stat = target.stat()
        slot = (str(target), stat.st_ino, stat.st_mtime_ns)
        with _LOCK:
            if slot not in _OPENED:
                _OPENED[slot] = cls._load(target)
            return _OPENED[slot]

    @classmethod
    def _load(cls, target: Path) -> SimulatedHygon:
        keys = {role: int((target / f"{role}.key").read_text().strip(), 16) for role in _ROLES}
        hrk = parse_ca_certificate((target / "hrk.cert").read_bytes())
        hsk = parse_ca_certificate((target / "hsk.cert").read_bytes())
        cek = parse_csv_certificate((target / "cek.cert").read_bytes())
        pek = parse_csv_certificate((target / "pek.cert").read_bytes())
        serial = (target / "serial.txt").read_text().strip()
        if "SIMULATED" not in serial or any(b"SIMULATED" not in c.user_id for c in (hrk, hsk, cek, pek)):
            raise ValueError(f"{target} does not hold a SIMULATED Hygon chain")
        return cls(target, keys, hrk, hsk, cek, pek, serial)

    def anchor(self) -> TrustAnchor:
        """The simulated HRK as a simulated ``hygon`` trust anchor."""
        from cchet.attest.verify.options import TrustAnchor

        return TrustAnchor("hygon", self.hrk.to_bytes(), simulated=True, name=ANCHOR_NAME)

    def hsk_cek(self) -> bytes:
        """HSK then CEK, as Hygon's KDS serves them for a chip."""
        return self.hsk.to_bytes() + self.cek.to_bytes()


def signer_mac(mnonce: bytes, pek: bytes, serial: bytes, reserved: bytes) -> bytes:
    """HMAC-SM3 keyed by the guest's mnonce over the signer block as the firmware stores it (masked in V1)."""
    from cryptography.hazmat.primitives import hashes, hmac

    mac = hmac.HMAC(mnonce, hashes.SM3())
    mac.update(pek + serial + reserved)
    return mac.finalize()


def simulate_csv_report(
    authority: SimulatedAuthority,
    *,
    report_data: bytes,
    version: int = 2,
    measurement: bytes | None = None,
    user_pubkey_digest: bytes = bytes(32),
    vm_id: bytes = bytes(16),
    vm_version: bytes = bytes(16),
    policy: int = DEFAULT_POLICY,
    debug: bool = False,
    mnonce: bytes | None = None,
    anonce: int | None = None,
    build: int = SIM_BUILD,
    rtmrs: tuple[bytes, bytes, bytes, bytes] | None = None,
    hsk_cek: bool = True,
    masked_signer: bool = False,
) -> tuple[CsvReport, bytes]:
    """A SIMULATED report binding ``report_data`` (64 bytes) and its certificate bundle (HSK and CEK as
    ``HYGON CERTIFICATE`` blocks; empty with ``hsk_cek=False``, so verification needs collateral).

    ``version`` 2 (extended: ``rtmrs`` are RTMR1..4, RTMR0 is the measurement) or 1 (masked with ``anonce``,
    random by default). ``debug`` clears the policy's NODBG bit. Raises ``ValueError`` for wrong sizes.
    """
    if version not in (1, 2):
        raise ValueError("CSV report versions are 1 and 2")
    if len(report_data) != 64:
        raise ValueError("report_data must be exactly 64 bytes")
    hygon = SimulatedHygon.open(authority)
    measurement = measurement if measurement is not None else sm2.sm3(b"cchet SIMULATED CSV launch measurement")
    mnonce = mnonce if mnonce is not None else os.urandom(16)
    sizes = {
        "measurement": (measurement, 32),
        "user_pubkey_digest": (user_pubkey_digest, 32),
        "vm_id": (vm_id, 16),
        "vm_version": (vm_version, 16),
        "mnonce": (mnonce, 16),
    }
    for name, (value, size) in sizes.items():
        if len(value) != size:
            raise ValueError(f"{name} must be {size} bytes")
    policy = policy & ~POLICY_NODBG if debug else policy
    a = (anonce if anonce is not None else int.from_bytes(os.urandom(4), "little")) if version == 1 else 0
    extended: tuple[bytes, ...] = ()
    if version == 2:
        extended = (
            rtmrs if rtmrs is not None else tuple(sm2.sm3(b"cchet SIMULATED CSV rtmr%d" % i) for i in range(1, 5))
        )
        if len(extended) != 4 or any(len(r) != 32 for r in extended):
            raise ValueError("rtmrs must be four 32-byte values (RTMR1..RTMR4)")
    info = TeeInfo(
        version=version,
        user_pubkey_digest=mask(user_pubkey_digest, a),
        vm_id=mask(vm_id, a),
        vm_version=mask(vm_version, a),
        report_data=mask(report_data, a),
        mnonce=mask(mnonce, a),
        measure=mask(measurement, a),
        policy=policy ^ a,
        sig_usage=USAGE_PEK ^ a,
        sig_algo=ALGO_SM2_SIGN ^ a,
        signature_r=bytes(72),
        signature_s=bytes(72),
        anonce=a,
        build=build if version == 2 else 0,
        rtmr_version=1 if version == 2 else 0,
        reserved0=bytes(14) if version == 2 else b"",
        rtmrs=(measurement, *extended) if version == 2 else (),
        reserved1=bytes(656) if version == 2 else b"",
    )
    r, s = sm2.sign(hygon.keys["pek"], hygon.pek.distinguishing_id, info.signed_bytes())
    info = TeeInfo(**{**info.__dict__, "signature_r": _coord(r), "signature_s": _coord(s)})
    serial = hygon.serial.encode().ljust(64, b"\0")
    stored_pek, stored_sn = mask(hygon.pek.to_bytes(), a), mask(serial, a)
    mac = signer_mac(mnonce, stored_pek, stored_sn, bytes(32))
    signer = (
        SignerBlock(stored_pek, stored_sn, bytes(32), mac)
        if masked_signer
        else SignerBlock(hygon.pek.to_bytes(), serial, bytes(32), mac)
    )
    body = info.to_bytes() + signer.to_bytes()
    report = CsvReport(
        MAGIC_EXT if version == 2 else MAGIC_ZERO,
        1 if version == 2 else 0,
        info,
        signer,
        bytes(4096 - len(body)),
    )
    return report, armor((hygon.hsk, hygon.cek)) if hsk_cek else b""
