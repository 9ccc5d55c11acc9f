"""Master key, key store and audit log: durable, sealed, tamper-evident."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import cchet
from cchet import IntegrityError
from cchet.broker import keystore as ks
from cchet.broker.audit import AuditLog, verify_audit_log
from cchet.broker.keystore import KeyScope, KeyStore
from cchet.broker.master import MASTER_FILE, MasterKey


def test_master_key_file_is_exclusive_0600_and_stable(tmp_path: Path) -> None:
    a, created = MasterKey.load_or_create(tmp_path / "state")
    assert created
    path = tmp_path / "state" / MASTER_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    b, created_again = MasterKey.load_or_create(tmp_path / "state")
    assert not created_again
    assert a.fingerprint == b.fingerprint and a.derive("x") == b.derive("x")
    assert a.derive("x") != a.derive("y")
    assert path.read_text().strip() not in repr(a) and a.fingerprint in repr(a)
    os.chmod(path, 0o640)
    with pytest.raises(PermissionError, match="chmod 600"):
        MasterKey.load_or_create(tmp_path / "state")


def test_master_key_refuses_pickling() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(MasterKey.generate())


def _store(state: Path) -> KeyStore:
    master, _ = MasterKey.load_or_create(state)
    return KeyStore(master.derive_data_key("keystore"), state)


def test_key_store_survives_restart_and_is_sealed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    key = cchet.DataKey.generate()
    store.add(key, policy_id="p1", scope=KeyScope(frozenset({"f"}), None), kind="job")
    on_disk = (tmp_path / ks.STORE_FILE).read_bytes()
    assert on_disk[:4] == b"CCH1"
    assert cchet.hazmat.data_key_bytes(key) not in on_disk and key.key_id.hex().encode() not in on_disk
    again = _store(tmp_path).get(key.key_id)
    assert again is not None and again.key == key and again.kind == "job"
    assert again.scope.functions == frozenset({"f"}) and again.scope.data_ids is None


def test_key_store_refuses_a_modified_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add(cchet.DataKey.generate(), policy_id="p")
    blob = bytearray((tmp_path / ks.STORE_FILE).read_bytes())
    blob[-1] ^= 1
    (tmp_path / ks.STORE_FILE).write_bytes(blob)
    with pytest.raises(IntegrityError, match="does not open under this master key"):
        _store(tmp_path)


def test_failed_persist_adds_nothing(tmp_path: Path) -> None:
    master, _ = MasterKey.load_or_create(tmp_path)

    def crash() -> None:
        raise OSError("disk full")

    store = KeyStore(master.derive_data_key("keystore"), tmp_path, before_rename=crash)
    key = cchet.DataKey.generate()
    with pytest.raises(OSError, match="disk full"):
        store.add(key, policy_id="p")
    assert store.get(key.key_id) is None
    assert not (tmp_path / ks.STORE_FILE).exists()
    assert [p.name for p in tmp_path.iterdir()] == [MASTER_FILE]


def test_budget_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ks, "BUDGET_CHUNKS", 100)
    store = _store(tmp_path)
    key = cchet.DataKey.generate()
    store.add(key, policy_id="p")
    first = store.reserve(key.key_id, 40)
    assert first.key_id == key.key_id and first.reserved_chunks == 40
    second = store.reserve(key.key_id, 40)  # 80 > 75% of 100: rotate
    assert second.key_id != key.key_id and second.reserved_chunks == 40
    old = store.get(key.key_id)
    assert old is not None and old.successor == second.key_id and old.reserved_chunks == 40
    assert store.reserve(key.key_id, 10).key_id == second.key_id, "reservations follow the successor"
    assert _store(tmp_path).get(key.key_id) is not None, "rotation is durable"


def test_unknown_kind_and_duplicates(tmp_path: Path) -> None:
    store = KeyStore(None, None)
    key = cchet.DataKey.generate()
    with pytest.raises(ValueError, match="kind must be"):
        store.add(key, policy_id="p", kind="other")
    store.add(key, policy_id="p")
    with pytest.raises(ValueError, match="already"):
        store.add(key, policy_id="p")


def _log(tmp_path: Path, n: int = 5) -> tuple[Path, bytes]:
    key = os.urandom(32)
    log = AuditLog(tmp_path / "audit.jsonl", key)
    for i in range(n):
        log.record(
            "challenge" if i % 2 else "refusal", requester=f"w{i}", reasons=[f"r{i}"], key_ids=[bytes(16)]
        )
    return tmp_path / "audit.jsonl", key


def test_audit_log_verifies_and_resumes(tmp_path: Path) -> None:
    path, key = _log(tmp_path)
    assert verify_audit_log(path, key).ok and verify_audit_log(path, key).records == 5
    AuditLog(path, key).record("release", key_ids=[bytes(16)])
    report = verify_audit_log(path, key)
    assert report.ok and report.records == 6
    text = path.read_text()
    fields = {"seq", "time", "event", "requester", "evidence_digest", "policy_id", "verdict", "reasons"}
    fields |= {"key_ids", "prev", "mac"}
    assert all(set(json.loads(line)) == fields for line in text.splitlines()), (
        "a fixed field set: no key bytes"
    )


@pytest.mark.parametrize(
    ("damage", "first_bad", "words"),
    [
        (lambda lines: [*lines[:2], lines[2].replace('"r2"', '"rX"'), *lines[3:]], 3, "MAC"),
        (lambda lines: lines[:1] + lines[2:], 2, "sequence number"),
        (lambda lines: [lines[1], lines[0], *lines[2:]], 1, "sequence number"),
        (lambda lines: lines[:-1], 5, "truncated"),
        (lambda lines: lines[:-2], 4, "truncated"),
        (lambda lines: [*lines[:3], "not json", *lines[3:]], 4, "not an audit record"),
    ],
    ids=["modified", "deleted", "reordered", "truncated-1", "truncated-2", "garbage"],
)
def test_audit_verify_names_the_first_bad_record(
    tmp_path: Path, damage: object, first_bad: int, words: str
) -> None:
    path, key = _log(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(damage(lines)) + "\n")  # type: ignore[operator]
    report = verify_audit_log(path, key)
    assert not report.ok
    assert report.first_bad == first_bad, report
    assert words in (report.problem or "")
    with pytest.raises(ValueError, match="refusing to append"):
        AuditLog(path, key)


def test_audit_verify_with_the_wrong_key(tmp_path: Path) -> None:
    path, _ = _log(tmp_path)
    report = verify_audit_log(path, os.urandom(32))
    assert not report.ok and report.first_bad == 1
