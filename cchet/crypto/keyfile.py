"""Data keys in files, for sealing data at rest with ``cchet seal``.

A key file is JSON: ``{"cchet_data_key": 1, "key_id": <hex>, "key": <base64>}``. It is created
exclusively with mode 0600 (an existing file is never overwritten) and refused on read when group or
others can access it, as ssh refuses a readable private key.

Limits: a key file is plaintext key material on disk. Keep it on the data owner's machine; workers
receive keys from the broker, never from files.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from pathlib import Path

from cchet.hazmat.keys import KEY_ID_SIZE, KEY_SIZE, DataKey, data_key_bytes, data_key_from_bytes

__all__ = ["read_key_file", "write_key_file"]

_FORMAT = "cchet_data_key"


def write_key_file(path: str | os.PathLike[str], key: DataKey) -> Path:
    """Write ``key`` to a new file with mode 0600; ``FileExistsError`` if ``path`` exists."""
    p = Path(path)
    doc = {
        _FORMAT: 1,
        "key_id": key.key_id.hex(),
        "key": base64.b64encode(data_key_bytes(key)).decode(),
    }
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return p


def read_key_file(path: str | os.PathLike[str]) -> DataKey:
    """Load a key file; ``PermissionError`` if others may read it, ``ValueError`` if it is malformed."""
    p = Path(path)
    mode = p.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"key file {p} is accessible by group or others (mode {stat.S_IMODE(mode):04o}): run 'chmod 600 {p}'"
        )
    try:
        doc = json.loads(p.read_text())
        if doc.get(_FORMAT) != 1:
            raise ValueError(f"not a version-1 {_FORMAT} document")
        key_id = bytes.fromhex(doc["key_id"])
        raw = base64.b64decode(doc["key"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
        raise ValueError(f"{p} is not a cchet key file ({e}): create one with 'cchet key new FILE'") from None
    if len(raw) != KEY_SIZE or len(key_id) != KEY_ID_SIZE:
        raise ValueError(f"{p} holds a key of the wrong size: create one with 'cchet key new FILE'")
    return data_key_from_bytes(raw, key_id)
