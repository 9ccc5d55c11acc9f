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
        log.record("challenge" if i % 2 else "refusal", requester=f"w{i}", reasons=[f"r{i}"], key_ids=[bytes(16)])
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
    assert all(set(json.loads(line)) == fields for line in text.splitlines()), "a fixed field set: no key bytes"


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
def test_audit_verify_names_the_first_bad_record(tmp_path: Path, damage: object, first_bad: int, words: str) -> None:
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


def _rewrite(path: Path, line: int, rewrite: object) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = rewrite(lines[line - 1])  # type: ignore[operator]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("rewrite", "words"),
    [
        (lambda line: '{"verdict":"released",' + line[1:], "key 'verdict' appears twice"),
        (lambda line: line[:-1] + ',"verdict":null}', "key 'verdict' appears twice"),
        (lambda line: json.dumps(json.loads(line), sort_keys=True, separators=(", ", ":")), "not in canonical form"),
        (lambda line: json.dumps(dict(reversed(json.loads(line).items())), separators=(",", ":")), "canonical form"),
        (lambda line: line.replace('"event"', '"\\u0065vent"'), "not in canonical form"),
        (lambda line: line + " ", "not in canonical form"),
    ],
    ids=["duplicate-first", "duplicate-last", "spaces", "key-order", "escaped-key", "trailing-space"],
)
def test_a_line_that_parses_the_same_but_is_rewritten_fails(tmp_path: Path, rewrite: object, words: str) -> None:
    """The MAC covers the exact bytes of the line: a duplicate key (which a reader taking the first value would
    read as "released") or any re-encoding of the same record is a bad record, named by its line."""
    path, key = _log(tmp_path)
    _rewrite(path, 3, rewrite)
    report = verify_audit_log(path, key)
    assert not report.ok and report.first_bad == 3, report
    assert words in (report.problem or ""), report
    with pytest.raises(ValueError, match="refusing to append"):
        AuditLog(path, key)


def test_a_log_written_before_lines_were_canonical_still_verifies_and_grows(tmp_path: Path) -> None:
    """Logs cchet wrote before (``json.dumps(record, sort_keys=True)`` lines) stay valid: that encoding is as
    fixed as the canonical one. A duplicate key in such a line is still caught."""
    path, key = _log(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("".join(json.dumps(json.loads(line), sort_keys=True) + "\n" for line in lines))
    assert path.read_text() != "\n".join(lines) + "\n"
    assert verify_audit_log(path, key).ok
    AuditLog(path, key).record("challenge", requester="after the upgrade")
    assert verify_audit_log(path, key).ok and verify_audit_log(path, key).records == len(lines) + 1
    _rewrite(path, 2, lambda line: '{"verdict": "released", ' + line[1:])
    assert verify_audit_log(path, key).first_bad == 2


def test_records_are_written_in_canonical_form(tmp_path: Path) -> None:
    from cchet.broker.messages import canonical_json

    path, _ = _log(tmp_path, 2)
    for line in path.read_bytes().splitlines(keepends=True):
        assert canonical_json(json.loads(line)) + b"\n" == line


@pytest.mark.parametrize(
    "head",
    [
        lambda h: {**h, "seq": str(h["seq"])},
        lambda h: {**h, "seq": True},
        lambda h: {**h, "seq": -1},
        lambda h: {**h, "tag": 5},
        lambda h: {**h, "mac": "\u00e9" * 64},
        lambda h: [h],
        lambda h: "not a head",
    ],
    ids=["string-seq", "bool-seq", "negative-seq", "int-tag", "non-ascii-mac", "list", "string"],
)
def test_a_malformed_head_is_reported_not_a_crash(tmp_path: Path, head: object) -> None:
    path, key = _log(tmp_path)
    head_path = path.with_name(path.name + ".head")
    head_path.write_text(json.dumps(head(json.loads(head_path.read_text()))))  # type: ignore[operator]
    report = verify_audit_log(path, key)
    assert not report.ok and report.first_bad is None, report
    assert "head anchor" in (report.problem or "") and "malformed" in (report.problem or ""), report
    with pytest.raises(ValueError, match="refusing to append"):
        AuditLog(path, key)


def test_a_head_that_is_not_json_is_reported(tmp_path: Path) -> None:
    path, key = _log(tmp_path)
    path.with_name(path.name + ".head").write_bytes(b"\xff{")
    report = verify_audit_log(path, key)
    assert not report.ok and "is not JSON" in (report.problem or "")


def test_cchet_audit_verify_names_the_first_bad_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cchet.cli import main

    state = tmp_path / "state"
    master, _ = MasterKey.load_or_create(state)
    log = AuditLog(tmp_path / "audit.jsonl", master.derive("audit"))
    for i in range(4):
        log.record("refusal", requester=f"w{i}", reasons=["no"])
    verify = ["audit", "verify", str(log.path), "--state", str(state)]
    assert main(verify) == 0
    assert "4 records" in capsys.readouterr().out
    good = log.path.read_text()
    _rewrite(log.path, 2, lambda line: '{"verdict":"released",' + line[1:])
    assert main(verify) == 1
    assert "BAD at record 2: line 2 is not an audit record (key 'verdict' appears twice)" in capsys.readouterr().err
    log.path.write_text(good)
    head = log.path.with_name(log.path.name + ".head")
    head.write_text(json.dumps({**json.loads(head.read_text()), "seq": "4"}))
    assert main(verify) == 1
    assert "BAD at the head anchor: the head anchor" in capsys.readouterr().err


@pytest.mark.parametrize("env", ["XDG_STATE_HOME", "HOME"])
def test_cchet_audit_verify_finds_the_default_state(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log written where ``cchet.init(audit_log=...)`` keeps the broker's state verifies without --state."""
    from cchet.cli import main
    from cchet.runtime.session import default_broker_state

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if env == "XDG_STATE_HOME":
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    else:
        monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    state = default_broker_state()
    assert state.is_relative_to(tmp_path / ("xdg" if env == "XDG_STATE_HOME" else "home/.local/state"))
    master, _ = MasterKey.load_or_create(state)
    log = AuditLog(tmp_path / "audit.jsonl", master.derive("audit"))
    log.record("challenge", requester="w")
    assert main(["audit", "verify", str(log.path)]) == 0
    assert "1 records" in capsys.readouterr().out
    assert main(["audit", "verify", str(log.path), "--state", str(tmp_path / "elsewhere")]) == 1
    assert "pass --state DIR" in capsys.readouterr().err
