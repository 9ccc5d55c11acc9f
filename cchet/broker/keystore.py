"""The broker's key store: data keys with their policy, scope and usage budget, sealed on disk.

Every change is written durably (:func:`cchet.broker.durable.replace_file`) before the call returns, so a
key id is never handed out, and a key never released, before the store that holds it is on disk. The file is
a cchet sealed stream under a sub-key of the master key; a modified file refuses to load.

Usage budget (DESIGN.md section 3): per data key at most ``BUDGET_CHUNKS`` chunks may be sealed (about
2**29 one-MiB chunks for a 2**-50 advantage). Each release for sealing reserves ``ALLOTMENT_CHUNKS`` from the
budget; when the next allotment would pass ``ROTATE_FRACTION`` of the budget the store makes a successor key,
and new sealing goes to it while the old key stays available for opening what it sealed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from threading import RLock
from typing import Any

from cchet.broker.messages import echo
from cchet.crypto.oneshot import seal, unseal
from cchet.errors import IntegrityError
from cchet.hazmat.keys import DataKey, data_key_bytes, data_key_from_bytes

__all__ = ["ALLOTMENT_CHUNKS", "BUDGET_CHUNKS", "KeyScope", "KeyStore", "StoredKey"]

STORE_FILE = "keystore.sealed"
_CONTEXT = b"cchet/v1/broker/keystore"
BUDGET_CHUNKS = 2**29
ALLOTMENT_CHUNKS = 2**20
ROTATE_FRACTION = 0.75
KINDS = ("data", "job", "stream", "cluster")


@dataclass(frozen=True)
class KeyScope:
    """Who may receive a key. ``None`` means unrestricted; a set restricts release to requests naming only
    members of it (function identities are function digests or qualified names; data ids are the caller's).
    A refusal names the requested function or data id through :func:`~cchet.broker.messages.echo`."""

    functions: frozenset[str] | None = None
    data_ids: frozenset[str] | None = None

    def refusals(self, functions: Iterable[str], data_ids: Iterable[str]) -> list[str]:
        out = []
        if self.functions is not None:
            out += [f"function {echo(f)} is outside the key's scope" for f in functions if f not in self.functions]
        if self.data_ids is not None:
            out += [f"data id {echo(d)} is outside the key's scope" for d in data_ids if d not in self.data_ids]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "functions": None if self.functions is None else sorted(self.functions),
            "data_ids": None if self.data_ids is None else sorted(self.data_ids),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> KeyScope:
        f, d = doc.get("functions"), doc.get("data_ids")
        return cls(None if f is None else frozenset(f), None if d is None else frozenset(d))


@dataclass(frozen=True)
class StoredKey:
    """One key and what governs its release."""

    key: DataKey
    policy_id: str
    scope: KeyScope = field(default_factory=KeyScope)
    kind: str = "data"
    created: float = 0.0
    expires: float | None = None
    reserved_chunks: int = 0
    successor: bytes | None = None
    retired: float | None = None

    @property
    def key_id(self) -> bytes:
        return self.key.key_id


class KeyStore:
    """Keys by id, persisted sealed in ``state_dir`` (or only in memory when ``state_dir`` is None)."""

    def __init__(
        self,
        sealing_key: DataKey | None,
        state_dir: Path | None,
        *,
        clock: Callable[[], float] = time.time,
        before_rename: Callable[[], None] | None = None,
    ) -> None:
        if (sealing_key is None) != (state_dir is None):
            raise ValueError("a persistent key store needs both a sealing key and a state directory")
        self._sealing_key = sealing_key
        self._path = None if state_dir is None else Path(state_dir) / STORE_FILE
        self._clock = clock
        self._before_rename = before_rename
        self._lock = RLock()
        self._keys: dict[bytes, StoredKey] = {}
        if self._path is not None and self._path.exists():
            self._load()

    def _load(self) -> None:
        assert self._path is not None and self._sealing_key is not None
        try:
            doc = json.loads(unseal(self._sealing_key, self._path.read_bytes(), context=_CONTEXT))
        except IntegrityError:
            raise IntegrityError(
                f"the key store {self._path} does not open under this master key: it was modified, or the "
                "master key in this state directory is not the one that wrote it"
            ) from None
        for entry in doc["keys"]:
            key = data_key_from_bytes(base64.b64decode(entry["key"]), bytes.fromhex(entry["key_id"]))
            self._keys[key.key_id] = StoredKey(
                key=key,
                policy_id=entry["policy_id"],
                scope=KeyScope.from_json(entry["scope"]),
                kind=entry["kind"],
                created=entry["created"],
                expires=entry["expires"],
                reserved_chunks=entry["reserved_chunks"],
                successor=None if entry["successor"] is None else bytes.fromhex(entry["successor"]),
                retired=entry.get("retired"),
            )

    def _persist(self) -> None:
        if self._path is None or self._sealing_key is None:
            return
        from cchet.broker.durable import replace_file

        doc = {
            "version": 1,
            "keys": [
                {
                    "key_id": k.key_id.hex(),
                    "key": base64.b64encode(data_key_bytes(k.key)).decode(),
                    "policy_id": k.policy_id,
                    "scope": k.scope.to_json(),
                    "kind": k.kind,
                    "created": k.created,
                    "expires": k.expires,
                    "reserved_chunks": k.reserved_chunks,
                    "successor": None if k.successor is None else k.successor.hex(),
                    "retired": k.retired,
                }
                for k in self._keys.values()
            ],
        }
        blob = seal(self._sealing_key, json.dumps(doc).encode(), context=_CONTEXT)
        replace_file(self._path, blob, before_rename=self._before_rename)

    def add(
        self,
        key: DataKey,
        *,
        policy_id: str,
        scope: KeyScope | None = None,
        kind: str = "data",
        expires: float | None = None,
    ) -> StoredKey:
        """Store ``key`` durably; returns its entry. ``ValueError`` for a duplicate id or an unknown kind."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        with self._lock:
            if key.key_id in self._keys:
                raise ValueError(f"key id {key.key_id.hex()} is already in the store")
            entry = StoredKey(key, policy_id, scope or KeyScope(), kind, self._clock(), expires)
            self._keys[key.key_id] = entry
            try:
                self._persist()
            except BaseException:
                del self._keys[key.key_id]
                raise
            return entry

    def retire(self, key_id: bytes) -> StoredKey:
        """Mark ``key_id`` retired, durably: it stays in the store (so the log's records still name a key it
        knows) but is released to no one again. ``KeyError`` for an unknown id."""
        with self._lock:
            entry = self._keys[key_id]
            if entry.retired is None:
                self._keys[key_id] = replace(entry, retired=self._clock())
                try:
                    self._persist()
                except BaseException:
                    self._keys[key_id] = entry
                    raise
            return self._keys[key_id]

    def get(self, key_id: bytes) -> StoredKey | None:
        with self._lock:
            return self._keys.get(key_id)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._keys.values()))

    def reserve(self, key_id: bytes, chunks: int = ALLOTMENT_CHUNKS) -> StoredKey:
        """Reserve ``chunks`` of ``key_id``'s sealing budget; rotates to a successor key first when the
        reservation would pass the rotation threshold. Returns the entry to seal with."""
        with self._lock:
            entry = self._keys[key_id]
            while entry.successor is not None:
                entry = self._keys[entry.successor]
            if entry.reserved_chunks + chunks > ROTATE_FRACTION * BUDGET_CHUNKS:
                new = StoredKey(
                    DataKey.generate(), entry.policy_id, entry.scope, entry.kind, self._clock(), entry.expires
                )
                self._keys[new.key_id] = new
                self._keys[entry.key_id] = replace(entry, successor=new.key_id)
                entry = new
            entry = replace(entry, reserved_chunks=entry.reserved_chunks + chunks)
            self._keys[entry.key_id] = entry
            self._persist()
            return entry
