"""The broker's master key: one 0600 file, and the sub-keys derived from it.

Every long-lived secret of a broker comes from its master key through HKDF-SHA256 with a distinct label:
the key-store sealing key, the audit-log MAC key, and the Ed25519 identity key that signs responses and
tokens (so the broker id, which workers pin, survives restarts). Only the master key's fingerprint is ever
printed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cchet.hazmat.keys import DataKey, data_key_from_bytes

__all__ = ["MASTER_FILE", "MasterKey"]

MASTER_FILE = "master.key"
_LABEL = b"cchet/v1/broker/"


class MasterKey:
    """32 secret bytes. Refuses pickling; ``repr`` shows the fingerprint only."""

    __slots__ = ("__secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("a master key is 32 bytes")
        self.__secret = bytes(secret)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(32))

    @classmethod
    def load_or_create(cls, state_dir: str | os.PathLike[str]) -> tuple[MasterKey, bool]:
        """The master key in ``state_dir`` (created 0700 if missing); True when it was just created.

        The file is created exclusively with mode 0600; an existing file readable by group or others is
        refused (``PermissionError`` naming ``chmod 600``).
        """
        directory = Path(state_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / MASTER_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls.load(directory), False
        key = cls.generate()
        with os.fdopen(fd, "w") as f:
            f.write(key.__secret.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return key, True

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str]) -> MasterKey:
        """The existing master key of ``state_dir``; ``FileNotFoundError`` if there is none,
        ``PermissionError`` if group or others may read it."""
        path = Path(state_dir) / MASTER_FILE
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(
                f"master key {path} is accessible by group or others (mode {mode:04o}): run 'chmod 600 {path}'"
            )
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except ValueError:
            raise ValueError(f"{path} is not a cchet master key (64 hex digits expected)") from None

    @property
    def fingerprint(self) -> str:
        """A public 16-byte fingerprint (hex) that identifies the key without revealing it."""
        return hashlib.sha256(b"cchet/v1/master-fingerprint\x00" + self.__secret).digest()[:16].hex()

    def derive(self, label: str) -> bytes:
        """32 bytes for one purpose: HKDF-SHA256(master, info = "cchet/v1/broker/" || label)."""
        prk = hmac.digest(b"\x00" * 32, self.__secret, "sha256")
        return hmac.digest(prk, _LABEL + label.encode() + b"\x01", "sha256")

    def derive_data_key(self, label: str) -> DataKey:
        """A :class:`~cchet.DataKey` for sealing the broker's own state."""
        return data_key_from_bytes(self.derive(label), hashlib.sha256(label.encode()).digest()[:16])

    def identity_key(self) -> Ed25519PrivateKey:
        """The broker's Ed25519 identity key; its SPKI digest is the broker id."""
        return Ed25519PrivateKey.from_private_bytes(self.derive("identity"))

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self.fingerprint})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("MasterKey refuses to be pickled")
