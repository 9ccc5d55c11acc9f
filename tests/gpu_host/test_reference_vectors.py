"""The numpy reference of the GPU kernel against Wycheproof and NIST CAVP AES-256-GCM vectors.

The kernel takes AES-256 keys and 96-bit nonces only, so only those vectors apply. Wycheproof: all of
them. NIST: every 96-bit-IV case with a 128-bit tag and the first three cases of every section with a
truncated tag (compared as a prefix; the computation is the same), to keep the suite fast; set
``CCHET_FULL_VECTORS=1`` to run all 2625 cases of each file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cchet.errors import IntegrityError
from cchet.gpu import reference
from tests.conftest import fixture_path


def _wycheproof() -> list[dict[str, str]]:
    data = json.loads(fixture_path("aes_gcm/wycheproof/aes_gcm_test.json").read_text())
    return [
        t
        for g in data["testGroups"]
        if g["keySize"] == 256 and g["ivSize"] == 96 and g["tagSize"] == 128
        for t in g["tests"]
    ]


def test_wycheproof_aes256_96bit_iv() -> None:
    cases = _wycheproof()
    assert len(cases) >= 60
    valid = invalid = 0
    for t in cases:
        key, iv, aad = (bytes.fromhex(t[k]) for k in ("key", "iv", "aad"))
        msg, ct, tag = (bytes.fromhex(t[k]) for k in ("msg", "ct", "tag"))
        if t["result"] == "valid":
            assert reference.gcm_encrypt(key, iv, aad, msg) == ct + tag, t["tcId"]
            assert reference.gcm_decrypt(key, iv, aad, ct + tag) == msg, t["tcId"]
            valid += 1
        else:
            with pytest.raises(IntegrityError):
                reference.gcm_decrypt(key, iv, aad, ct + tag)
            invalid += 1
    assert valid and invalid


def _rsp(path: Path) -> Iterator[dict[str, str]]:
    """Cases of a CAVP ``.rsp`` file with their section parameters (``IVlen``, ``Taglen``, ...)."""
    params: dict[str, str] = {}
    case: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            k, _, v = line.strip("[]").partition(" = ")
            params[k] = v
        elif line.startswith("Count = "):
            if case:
                yield case
            case = dict(params, Count=line.removeprefix("Count = "))
        elif line == "FAIL":
            case["FAIL"] = "1"
        elif " = " in line or line.endswith(" ="):
            k, _, v = line.partition(" =")
            case[k.strip()] = v.strip()
    if case:
        yield case


def _nist(name: str) -> list[dict[str, str]]:
    cases = [c for c in _rsp(fixture_path(f"aes_gcm/nist_cavp/{name}")) if c["IVlen"] == "96"]
    assert len(cases) == 2625
    if os.environ.get("CCHET_FULL_VECTORS") == "1":
        return cases
    return [c for c in cases if c["Taglen"] == "128" or int(c["Count"]) < 3]


def test_nist_encrypt_ext_iv_256() -> None:
    cases = _nist("gcmEncryptExtIV256.rsp")
    for c in cases:
        key, iv, pt, aad = (bytes.fromhex(c[k]) for k in ("Key", "IV", "PT", "AAD"))
        out = reference.gcm_encrypt(key, iv, aad, pt)
        tag = bytes.fromhex(c["Tag"])
        assert out[: len(pt)].hex() == c["CT"], c["Count"]
        assert out[len(pt) :][: len(tag)] == tag, c["Count"]


def test_nist_decrypt_256() -> None:
    cases = _nist("gcmDecrypt256.rsp")
    fails = 0
    for c in cases:
        key, iv, ct, aad, tag = (bytes.fromhex(c[k]) for k in ("Key", "IV", "CT", "AAD", "Tag"))
        if "FAIL" in c:
            fails += 1
            with pytest.raises(IntegrityError):
                reference.gcm_decrypt(key, iv, aad, ct + tag, tag_length=len(tag))
        else:
            assert reference.gcm_decrypt(key, iv, aad, ct + tag, tag_length=len(tag)).hex() == c["PT"]
    assert 0 < fails < len(cases)
