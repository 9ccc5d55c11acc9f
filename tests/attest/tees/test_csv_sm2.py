"""SM2/SM3 for Hygon CSV on gmssl: the distinguishing ID really enters Z, signatures interoperate with OpenSSL's
SM2 (same ID), gmssl's pitfalls are avoided, and bad input is a failed verification, never an exception."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from gmssl import sm2 as gm_sm2
from hypothesis import given, settings
from hypothesis import strategies as st

from cchet.attest.tees.csv import sm2

HYGON_ID = b"HYGON-SSD-PEK"
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")
"""SubjectPublicKeyInfo of an SM2 key (id-ecPublicKey, curve 1.2.156.10197.1.301), up to the point's x."""


def _openssl_sm2() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("no openssl command here: the SM2 differential needs OpenSSL 3 with SM2")
    listed = subprocess.run([exe, "list", "-public-key-algorithms"], capture_output=True, text=True, check=False)
    if "SM2" not in listed.stdout:
        pytest.skip("this openssl has no SM2")
    return exe


def _der_int(v: int) -> bytes:
    raw = v.to_bytes((v.bit_length() + 8) // 8, "big")
    return b"\x02" + bytes([len(raw)]) + raw


def _der_signature(r: int, s: int) -> bytes:
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def _from_der_signature(der: bytes) -> tuple[int, int]:
    assert der[0] == 0x30
    at = 2
    out = []
    for _ in range(2):
        n = der[at + 1]
        out.append(int.from_bytes(der[at + 2 : at + 2 + n], "big"))
        at += 2 + n
    return out[0], out[1]


def test_z_with_the_default_id_is_gmssls_own() -> None:
    """gmssl's ``_sm3_z`` computes SM3(Z || M) with the fixed ID 1234567812345678: the same value from our Z shows
    that Z is built as gmssl builds it, so a Z with another ID is that ID's."""
    _, x, y = sm2.generate()
    gm = gm_sm2.CryptSM2(private_key="", public_key=f"{x:064x}{y:064x}")
    for message in (b"", b"abc", bytes(range(256))):
        assert sm2.message_digest(sm2.DEFAULT_ID, x, y, message).hex() == gm._sm3_z(message)
    assert sm2.z_value(HYGON_ID, x, y) != sm2.z_value(sm2.DEFAULT_ID, x, y)


def test_a_signature_holds_only_for_its_id_key_and_message() -> None:
    d, x, y = sm2.generate()
    sig = sm2.sign(d, HYGON_ID, b"report")
    assert sm2.verify((x, y), HYGON_ID, b"report", sig)
    assert not sm2.verify((x, y), sm2.DEFAULT_ID, b"report", sig)
    assert not sm2.verify((x, y), HYGON_ID, b"report!", sig)
    _, x2, y2 = sm2.generate()
    assert not sm2.verify((x2, y2), HYGON_ID, b"report", sig)
    # gmssl's own verify_with_sm3 (default ID) refuses a Hygon-ID signature: the ID is not optional
    gm = gm_sm2.CryptSM2(private_key="", public_key="")
    gm.public_key = f"{x:064x}{y:064x}"
    assert not gm.verify_with_sm3(f"{sig[0]:064x}{sig[1]:064x}", b"report")


def test_openssl_verifies_our_signatures_with_the_same_distinguishing_id(tmp_path: Path) -> None:
    exe = _openssl_sm2()
    d, x, y = sm2.generate()
    message = b"cchet SM2 interop " + bytes(range(64))
    r, s = sm2.sign(d, HYGON_ID, message)
    (tmp_path / "pub.der").write_bytes(SPKI_PREFIX + x.to_bytes(32, "big") + y.to_bytes(32, "big"))
    (tmp_path / "m").write_bytes(message)
    (tmp_path / "sig").write_bytes(_der_signature(r, s))

    def check(distid: str) -> bool:
        cmd = [exe, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-keyform", "DER"]
        cmd += ["-inkey", str(tmp_path / "pub.der"), "-in", str(tmp_path / "m"), "-sigfile", str(tmp_path / "sig")]
        done = subprocess.run([*cmd, "-pkeyopt", f"distid:{distid}"], capture_output=True, text=True, check=False)
        return "Verified Successfully" in done.stdout

    assert check(HYGON_ID.decode())
    assert not check("1234567812345678")


def test_we_verify_openssls_signatures_with_the_same_distinguishing_id(tmp_path: Path) -> None:
    exe = _openssl_sm2()
    key, pub, m, sig = (tmp_path / n for n in ("k.pem", "pub.der", "m", "sig"))
    subprocess.run([exe, "genpkey", "-algorithm", "SM2", "-out", str(key)], check=True, capture_output=True)
    subprocess.run([exe, "pkey", "-in", str(key), "-pubout", "-outform", "DER", "-out", str(pub)], check=True)
    m.write_bytes(b"signed by OpenSSL")
    sign = [exe, "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(key), "-in", str(m), "-out", str(sig)]
    subprocess.run([*sign, "-pkeyopt", f"distid:{HYGON_ID.decode()}"], check=True, capture_output=True)
    point = pub.read_bytes()[-64:]
    x, y = int.from_bytes(point[:32], "big"), int.from_bytes(point[32:], "big")
    signature = _from_der_signature(sig.read_bytes())
    assert sm2.verify((x, y), HYGON_ID, b"signed by OpenSSL", signature)
    assert not sm2.verify((x, y), sm2.DEFAULT_ID, b"signed by OpenSSL", signature)


def test_keys_whose_x_starts_with_0_or_4_verify() -> None:
    """gmssl's constructor strips every leading 0 and 4 of a key given as ``04 || x || y``; we never pass keys
    through it."""
    for _ in range(200):
        d, x, y = sm2.generate()
        if f"{x:064x}"[0] in "04":
            break
    else:
        pytest.fail("no key with such an x in 200 draws (probability 2/16 each)")
    mangled = gm_sm2.CryptSM2(private_key="", public_key=f"04{x:064x}{y:064x}").public_key
    assert mangled != f"{x:064x}{y:064x}"  # the pitfall is real
    assert sm2.verify((x, y), HYGON_ID, b"m", sm2.sign(d, HYGON_ID, b"m"))


@pytest.mark.parametrize(
    ("point", "signature"),
    [
        ("good", (0, 1)),
        ("good", (1, sm2.CURVE_N)),
        ("good", (sm2.CURVE_N, 1)),
        ((1, 1), (5, 5)),  # off the curve
        ((0, 0), (5, 5)),
        ((sm2.CURVE_P, 1), (5, 5)),
    ],
)
def test_bad_input_is_a_failed_verification(point: object, signature: tuple[int, int]) -> None:
    _, x, y = sm2.generate()
    where = (x, y) if point == "good" else point
    assert sm2.verify(where, HYGON_ID, b"m", signature) is False  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=2**256 - 1), st.integers(min_value=0, max_value=2**256 - 1))
@settings(max_examples=40, deadline=None)
def test_random_signatures_never_raise(r: int, s: int) -> None:
    assert sm2.verify((sm2.GX, sm2.GY), HYGON_ID, b"m", (r, s)) is False  # a random pair forging a signature: 2^-256


@given(st.binary(max_size=300))
@settings(max_examples=30, deadline=None)
def test_gmssl_sm3_agrees_with_openssls(data: bytes) -> None:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    assert sm2.sm3(data) == digest.finalize()


def test_sm3_known_answer() -> None:
    """GB/T 32905 example 1: SM3("abc")."""
    assert sm2.sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
