"""Known-answer vectors through cchet.hazmat.aead (both backends) and cchet.hazmat.ghash."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cchet import IntegrityError
from cchet.hazmat import aead, ghash
from tests.conftest import fixture_path

BACKENDS = sorted(aead.BACKENDS)

# McGrew & Viega, "The Galois/Counter Mode of Operation", Appendix B, test cases 13-16 (AES-256).
_K15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
_P15 = (
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
_C15 = (
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)
MCGREW_VIEGA = [
    # (case, key, iv, plaintext, aad, ciphertext, tag)
    (13, "00" * 32, "00" * 12, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    (
        14,
        "00" * 32,
        "00" * 12,
        "00" * 16,
        "",
        "cea7403d4d606b6e074ec5d3baf39d18",
        "d0d1c8a799996bf0265b98b5d48ab919",
    ),
    (15, _K15, "cafebabefacedbaddecaf888", _P15, "", _C15, "b094dac5d93471bdec1a502270e3cc6c"),
    (
        16,
        _K15,
        "cafebabefacedbaddecaf888",
        _P15[:-8],
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        _C15[:-8],
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", MCGREW_VIEGA, ids=lambda c: f"tc{c[0]}")
def test_mcgrew_viega(backend: str, case: tuple[int, str, str, str, str, str, str]) -> None:
    _, key, iv, pt, ad, ct, tag = (bytes.fromhex(x) if isinstance(x, str) else x for x in case)
    assert aead.encrypt(key, iv, pt, ad, backend=backend) == ct + tag
    assert aead.decrypt(key, iv, ct + tag, ad, backend=backend) == pt
    bad = bytearray(ct + tag)
    bad[-1] ^= 1
    with pytest.raises(IntegrityError):
        aead.decrypt(key, iv, bytes(bad), ad, backend=backend)


def _unsupported(backend: str, iv_len: int, tag_len: int) -> str | None:
    if backend == "openssl" and not 8 <= iv_len <= 128:
        return f"openssl backend: {iv_len}-byte IV outside 8..128"
    if backend == "openssl" and tag_len != 16:
        return "openssl backend: tags other than 16 bytes"
    if iv_len == 0:
        return "zero-length IV is not GCM"
    return None


@pytest.mark.parametrize("backend", BACKENDS)
def test_wycheproof(backend: str, report: list[str]) -> None:
    doc = json.loads(fixture_path("aes_gcm/wycheproof/aes_gcm_test.json").read_text())
    ran, skipped = 0, Counter[str]()
    for group in doc["testGroups"]:
        for t in group["tests"]:
            key, iv, msg, ad = (bytes.fromhex(t[k]) for k in ("key", "iv", "msg", "aad"))
            ct, tag = bytes.fromhex(t["ct"]), bytes.fromhex(t["tag"])
            why = _unsupported(backend, len(iv), len(tag))
            if why:
                skipped[why] += 1
                continue
            ran += 1
            if t["result"] == "valid":
                assert aead.encrypt(key, iv, msg, ad, backend=backend) == ct + tag, t["tcId"]
                assert aead.decrypt(key, iv, ct + tag, ad, backend=backend) == msg, t["tcId"]
            else:
                with pytest.raises(IntegrityError):
                    aead.decrypt(key, iv, ct + tag, ad, backend=backend)
    assert ran > 250
    report.append(
        f"wycheproof aes_gcm [{backend}]: {ran} run, {sum(skipped.values())} skipped {dict(skipped)}"
    )


def _cavp_cases(path: Path) -> list[dict[str, str]]:
    cases, cur = [], {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("Count"):
            cur = {}
            cases.append(cur)
        elif line == "FAIL":
            cur["FAIL"] = "1"
        elif "=" in line and cases:
            k, _, v = line.partition("=")
            cur[k.strip()] = v.strip()
    return cases


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["gcmEncryptExtIV256.rsp", "gcmDecrypt256.rsp"])
def test_nist_cavp(backend: str, name: str, report: list[str]) -> None:
    cases = _cavp_cases(fixture_path(f"aes_gcm/nist_cavp/{name}"))
    ran, skipped = 0, Counter[str]()
    for c in cases:
        key, iv, ad = (bytes.fromhex(c[k]) for k in ("Key", "IV", "AAD"))
        ct, tag = bytes.fromhex(c["CT"]), bytes.fromhex(c["Tag"])
        why = _unsupported(backend, len(iv), len(tag))
        if why:
            skipped[why] += 1
            continue
        ran += 1
        if "FAIL" in c:
            with pytest.raises(IntegrityError):
                aead.decrypt(key, iv, ct + tag, ad, backend=backend, tag_length=len(tag))
            continue
        pt = bytes.fromhex(c["PT"])
        assert aead.decrypt(key, iv, ct + tag, ad, backend=backend, tag_length=len(tag)) == pt
        assert aead.encrypt(key, iv, pt, ad, backend=backend, tag_length=len(tag)) == ct + tag
    assert ran >= 700  # openssl runs only the 16-byte-tag, >= 8-byte-IV cases
    report.append(f"NIST CAVP {name} [{backend}]: {ran} run, {sum(skipped.values())} skipped {dict(skipped)}")


def test_ghash_vectors(report: list[str]) -> None:
    doc = json.loads(fixture_path("aes_gcm/ghash/ghash_vectors.json").read_text())
    for v in doc["vectors"]:
        h = bytes.fromhex(v["H"])
        if v["kind"] == "raw_blocks":
            got = ghash.ghash_blocks(h, b"".join(bytes.fromhex(b) for b in v["blocks"]))
        else:
            got = ghash.ghash(h, bytes.fromhex(v["A"]), bytes.fromhex(v["C"]))
        assert got.hex() == v["ghash"], v["id"]
    report.append(f"GHASH vectors: {len(doc['vectors'])} run")


def test_ghash_is_the_tag_of_gcm() -> None:
    """Tag = E(K, J0) xor GHASH(H, A, C), with H = E(K, 0^128): McGrew-Viega test case 16."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    _, key_hex, iv_hex, _, ad_hex, ct_hex, tag_hex = MCGREW_VIEGA[3]
    key = bytes.fromhex(key_hex)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    h = enc.update(bytes(16))
    ej0 = enc.update(bytes.fromhex(iv_hex) + b"\x00\x00\x00\x01")
    s = ghash.ghash(h, bytes.fromhex(ad_hex), bytes.fromhex(ct_hex))
    assert bytes(a ^ b for a, b in zip(s, ej0, strict=True)).hex() == tag_hex


def test_gf128_pow_matches_repeated_multiplication() -> None:
    h = int.from_bytes(bytes.fromhex("66e94bd4ef8a2c3b884cfa59ca342b2e"), "big")
    assert ghash.gf128_pow(h, 3) == ghash.gf128_mul(ghash.gf128_mul(h, h), h)
    with pytest.raises(ValueError):
        ghash.gf128_pow(h, 0)
