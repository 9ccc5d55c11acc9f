"""The broker's audit log: append-only JSON lines, each MACed together with the previous record's tag.

Every challenge, appraisal, release and refusal becomes one record: time, event, requester, evidence digest,
policy id, verdict, reasons and key ids. Key bytes and data never enter a record; the field set is fixed.

Format: each line is the canonical JSON of one record (sorted keys, no whitespace, ASCII only:
:func:`cchet.broker.messages.canonical_json`) and a newline. ``mac_n = HMAC-SHA256(k, canonical(record_n
without mac))``, where the record includes ``prev = mac_{n-1}`` (32 zero bytes for the first). A line must be
exactly the canonical encoding of what it parses to (or, for logs written before, the one other fixed
encoding cchet used then: :func:`_legacy_line`), with no key twice, so the bytes of a line determine the
bytes its MAC covers one to one: a line rewritten to read otherwise (a duplicate ``"verdict"``, other spacing or
escapes) fails, even where a JSON parser would read the same record. A head file beside the log
(``<log>.head``) anchors the last sequence number and tag under the same key, so cutting records off the end
is detected, not only changes in the middle. :func:`verify_audit_log` names the first bad record.

What it does not do: an attacker who holds the MAC key (the broker's master key) can rewrite history; the
log proves integrity to whoever trusts the broker's state directory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cchet.broker.durable import replace_file
from cchet.broker.messages import canonical_json

__all__ = ["EVENTS", "FIELDS", "AuditLog", "AuditReport", "verify_audit_log"]

EVENTS = ("challenge", "appraisal", "release", "refusal", "rotation", "unhardened")
FIELDS = frozenset(
    (
        "seq",
        "time",
        "event",
        "requester",
        "evidence_digest",
        "policy_id",
        "verdict",
        "reasons",
        "key_ids",
        "prev",
        "mac",
    )
)
"""The keys of every record: what happened, then the chain link and the MAC."""
_GENESIS = bytes(32)
_TAG = re.compile(r"[0-9a-f]{64}")


def _mac(key: bytes, record: dict[str, Any]) -> str:
    return hmac.new(key, canonical_json(record), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, seq: int, tag: str) -> str:
    return hmac.new(key, f"cchet/v1/audit/head\x00{seq}\x00{tag}".encode(), hashlib.sha256).hexdigest()


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


@dataclass(frozen=True)
class AuditReport:
    """Result of :func:`verify_audit_log`. ``first_bad`` is the 1-based line of the first bad record (None when
    only the head anchor is bad)."""

    records: int
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that names no key twice (``object_pairs_hook``); ``ValueError`` otherwise."""
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise ValueError(f"key {key!r} appears twice")
        record[key] = value
    return record


def _legacy_line(record: dict[str, Any]) -> bytes:
    """The line cchet wrote for ``record`` before lines were canonical (sorted keys, ``", "`` and ``": "``
    separators, ASCII). Its MAC covers the same canonical bytes, and it is as much a function of the record as
    the canonical line is, so logs written then still verify, and a rewrite is still caught."""
    return json.dumps(record, sort_keys=True).encode() + b"\n"


def _parse_record(raw: bytes) -> dict[str, Any]:
    """One line as a record; ``ValueError`` saying what is wrong with it."""
    if not raw.endswith(b"\n"):
        raise ValueError("is incomplete (it does not end with a newline)")
    try:
        record = json.loads(raw, object_pairs_hook=_unique)
    except ValueError as e:
        raise ValueError(f"is not an audit record ({e})") from None
    if not isinstance(record, dict) or set(record) != FIELDS:
        raise ValueError(f"is not an audit record (fields: exactly {', '.join(sorted(FIELDS))})")
    if raw not in (canonical_json(record) + b"\n", _legacy_line(record)):
        raise ValueError("is not in canonical form (sorted keys, no whitespace, ASCII): it was rewritten")
    if type(record["seq"]) is not int or not (isinstance(record["mac"], str) and _TAG.fullmatch(record["mac"])):
        raise ValueError("is not an audit record (seq must be an integer, mac 64 hex digits)")
    return record


def _read_head(path: Path) -> tuple[int, str, str] | None:
    """The head anchor beside ``path`` as (seq, tag, mac); None when it is missing, ``ValueError`` when it is
    malformed."""
    head = _head_path(path)
    if not head.exists():
        return None
    try:
        doc = json.loads(head.read_bytes())
    except ValueError:
        raise ValueError(f"the head anchor {head} is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError(f"the head anchor {head} is malformed (not a JSON object)")
    seq, tag, mac = doc.get("seq"), doc.get("tag"), doc.get("mac")
    if type(seq) is not int or seq < 0 or not all(isinstance(v, str) and _TAG.fullmatch(v) for v in (tag, mac)):
        raise ValueError(
            f"the head anchor {head} is malformed (seq must be a non-negative integer, tag and mac 64 hex digits)"
        )
    return seq, str(tag), str(mac)


def verify_audit_log(path: str | os.PathLike[str], mac_key: bytes) -> AuditReport:
    """Check every line's form, MAC and chain link, then the head anchor (truncation, unanchored tail).

    Protects against any change to the log or its head by someone without the MAC key: a modified, rewritten
    (even to something that parses the same), removed, reordered or appended record, or a truncated log.
    Raises ``OSError`` when the log cannot be read; every problem with its content is in the report.
    """
    p = Path(path)
    prev, n = _GENESIS.hex(), 0
    with p.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                record = _parse_record(raw)
            except ValueError as e:
                return AuditReport(n - 1, n, f"line {n} {e}")
            mac = record.pop("mac")
            if record["seq"] != n:
                return AuditReport(n - 1, n, f"line {n} has sequence number {record['seq']}, expected {n}")
            if record["prev"] != prev:
                return AuditReport(n - 1, n, f"line {n} does not chain to line {n - 1} (records removed or reordered)")
            if not hmac.compare_digest(_mac(mac_key, record), mac):
                return AuditReport(n - 1, n, f"line {n} fails its MAC (modified, or another broker's key)")
            prev = mac
    try:
        head = _read_head(p)
    except ValueError as e:
        return AuditReport(n, None, str(e))
    if head is None:
        return AuditReport(n, n + 1 if n else 1, "the head anchor file is missing: truncation cannot be ruled out")
    seq, tag, mac = head
    if not hmac.compare_digest(_head_mac(mac_key, seq, tag), mac):
        return AuditReport(n, None, "the head anchor fails its MAC")
    if seq > n:
        return AuditReport(n, n + 1, f"truncated: the head anchors record {seq} but the log ends at {n}")
    if seq < n:
        return AuditReport(n, seq + 1, f"records after {seq} are not anchored by the head")
    if tag != prev:
        return AuditReport(n, n, f"line {n} is not the record the head anchors")
    return AuditReport(n)


class AuditLog:
    """Appends MAC-chained records to ``path``; thread-safe. Refuses to extend a log that does not verify."""

    def __init__(self, path: str | os.PathLike[str], mac_key: bytes, *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._key = mac_key
        self._clock = clock
        self._lock = threading.Lock()
        self._seq, self._prev = 0, _GENESIS.hex()
        if self.path.exists() and self.path.stat().st_size:
            report = verify_audit_log(self.path, mac_key)
            if not report.ok:
                raise ValueError(
                    f"audit log {self.path} does not verify ({report.problem}); refusing to append. "
                    f"Inspect it with 'cchet audit verify {self.path} --state DIR' and move it aside "
                    "to start a new log"
                )
            head = _read_head(self.path)
            assert head is not None
            self._seq, self._prev = head[0], head[1]
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600)
            self._anchor(0, _GENESIS.hex())

    def _anchor(self, seq: int, tag: str) -> None:
        head = {"seq": seq, "tag": tag, "mac": _head_mac(self._key, seq, tag)}
        replace_file(_head_path(self.path), canonical_json(head))

    def record(
        self,
        event: str,
        *,
        requester: str = "",
        evidence_digest: str | None = None,
        policy_id: str | None = None,
        verdict: str | None = None,
        reasons: Iterable[str] = (),
        key_ids: Iterable[bytes] = (),
    ) -> int:
        """Append one record durably; returns its sequence number."""
        if event not in EVENTS:
            raise ValueError(f"event must be one of {', '.join(EVENTS)}, got {event!r}")
        with self._lock:
            seq = self._seq + 1
            entry: dict[str, Any] = {
                "seq": seq,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._clock())) + "Z",
                "event": event,
                "requester": requester,
                "evidence_digest": evidence_digest,
                "policy_id": policy_id,
                "verdict": verdict,
                "reasons": list(reasons),
                "key_ids": sorted(k.hex() for k in key_ids),
                "prev": self._prev,
            }
            entry["mac"] = _mac(self._key, entry)
            with self.path.open("ab") as f:
                f.write(canonical_json(entry) + b"\n")
                f.flush()
                os.fsync(f.fileno())
            self._anchor(seq, entry["mac"])
            self._seq, self._prev = seq, entry["mac"]
            return seq
