"""The broker's audit log: append-only JSON lines, each MACed together with the previous record's tag.

Every challenge, appraisal, release and refusal becomes one record: time, event, requester, evidence digest,
policy id, verdict, reasons and key ids. Key bytes and data never enter a record; the field set is fixed.

Chaining: ``mac_n = HMAC-SHA256(k, canonical(record_n without mac))`` where the record includes
``prev = mac_{n-1}`` (32 zero bytes for the first). A head file beside the log (``<log>.head``) anchors the
last sequence number and tag under the same key, so cutting records off the end is detected, not only
changes in the middle. :func:`verify_audit_log` names the first bad record.

What it does not do: an attacker who holds the MAC key (the broker's master key) can rewrite history; the
log proves integrity to whoever trusts the broker's state directory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cchet.broker.durable import replace_file

__all__ = ["EVENTS", "AuditLog", "AuditReport", "verify_audit_log"]

EVENTS = ("challenge", "appraisal", "release", "refusal", "rotation", "unhardened")
_GENESIS = bytes(32)


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _mac(key: bytes, record: dict[str, Any]) -> str:
    return hmac.new(key, _canonical(record), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, seq: int, tag: str) -> str:
    return hmac.new(key, f"cchet/v1/audit/head\x00{seq}\x00{tag}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditReport:
    """Result of :func:`verify_audit_log`. ``first_bad`` is the 1-based line of the first bad record."""

    records: int
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _read_head(path: Path) -> dict[str, Any] | None:
    head = path.with_name(path.name + ".head")
    if not head.exists():
        return None
    doc: dict[str, Any] = json.loads(head.read_text())
    return doc


def verify_audit_log(path: str | os.PathLike[str], mac_key: bytes) -> AuditReport:
    """Check every record's MAC and chain link, then the head anchor (truncation, unanchored tail)."""
    p = Path(path)
    prev, n = _GENESIS.hex(), 0
    with p.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                record = json.loads(raw)
                mac = record.pop("mac")
            except (ValueError, KeyError, AttributeError, TypeError):
                return AuditReport(n - 1, n, f"line {n} is not an audit record")
            if record.get("seq") != n:
                return AuditReport(n - 1, n, f"line {n} has sequence number {record.get('seq')!r}, expected {n}")
            if record.get("prev") != prev:
                return AuditReport(n - 1, n, f"line {n} does not chain to line {n - 1} (records removed or reordered)")
            if not hmac.compare_digest(_mac(mac_key, record), str(mac)):
                return AuditReport(n - 1, n, f"line {n} fails its MAC (modified, or another broker's key)")
            prev = str(mac)
    head = _read_head(p)
    if head is None:
        return AuditReport(n, n + 1 if n else 1, "the head anchor file is missing: truncation cannot be ruled out")
    if not hmac.compare_digest(_head_mac(mac_key, head.get("seq", -1), str(head.get("tag"))), str(head.get("mac"))):
        return AuditReport(n, None, "the head anchor fails its MAC")
    if head["seq"] > n:
        return AuditReport(n, n + 1, f"truncated: the head anchors record {head['seq']} but the log ends at {n}")
    if head["seq"] < n:
        return AuditReport(n, head["seq"] + 1, f"records after {head['seq']} are not anchored by the head")
    if head["tag"] != prev:
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
            self._seq, self._prev = head["seq"], head["tag"]
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600)
            replace_file(self._head_path, json.dumps(self._head(0, _GENESIS.hex())).encode())

    @property
    def _head_path(self) -> Path:
        return self.path.with_name(self.path.name + ".head")

    def _head(self, seq: int, tag: str) -> dict[str, Any]:
        return {"seq": seq, "tag": tag, "mac": _head_mac(self._key, seq, tag)}

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
                f.write(json.dumps(entry, sort_keys=True).encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            replace_file(self._head_path, json.dumps(self._head(seq, entry["mac"])).encode())
            self._seq, self._prev = seq, entry["mac"]
            return seq
