"""The local collateral cache: files under one directory, one per piece of collateral, written atomically.

Layout: ``intel/<tee>-<FMSPC>-<ca>.json`` (dcap-qvl ``QuoteCollateralV3`` fields), ``amd/<product>-<key>-chain.pem``,
``amd/<product>-<key>-crl.der``, ``amd/vcek-<product>-<hwid>-<tcb>.der``, ``nvidia/<rim id>.xml``,
``hygon/hsk_cek-<serial>.cert`` and ``hygon/hrk.cert``. The cache trusts nothing it holds: everything read from it
is verified like fresh collateral.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cchet.attest.collateral.expiry import expiry_of

__all__ = ["CacheEntry", "CollateralCache", "default_cache_dir"]

_KINDS = {
    "intel": ".json",
    "amd-chain": "-chain.pem",
    "amd-crl": "-crl.der",
    "amd-vcek": ".der",
    "nvidia-rim": ".xml",
    "hygon": ".cert",
}
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def default_cache_dir() -> Path:
    """``$CCHET_COLLATERAL_DIR``, else ``$XDG_CACHE_HOME/cchet/collateral`` (``~/.cache/cchet/collateral``)."""
    env = os.environ.get("CCHET_COLLATERAL_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cchet" / "collateral"


@dataclass(frozen=True)
class CacheEntry:
    """One cached file: its kind, key, path and when it expires (None when unreadable)."""

    kind: str
    key: str
    path: Path
    expires: dt.datetime | None

    def state(self, now: dt.datetime, warn_within: dt.timedelta) -> str:
        """``ok``, ``expiring`` (within ``warn_within``), ``expired`` or ``unreadable``."""
        if self.expires is None:
            return "unreadable"
        if self.expires < now:
            return "expired"
        return "expiring" if self.expires - now <= warn_within else "ok"


@dataclass(frozen=True)
class CollateralCache:
    """A cache directory. Keys are file-name safe; ``ValueError`` otherwise."""

    root: Path

    def path(self, kind: str, key: str) -> Path:
        """Where ``kind``/``key`` is (or would be) cached."""
        if kind not in _KINDS or not _SAFE.match(key):
            raise ValueError(f"bad cache key {kind}/{key!r}")
        folder = "nvidia" if kind == "nvidia-rim" else kind.split("-", maxsplit=1)[0]
        return self.root / folder / f"{key}{_KINDS[kind]}"

    def get(self, kind: str, key: str) -> bytes | None:
        """The cached bytes, or None."""
        try:
            return self.path(kind, key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, kind: str, key: str, data: bytes) -> Path:
        """Stores ``data`` atomically (write beside, then rename); returns the path."""
        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def entries(self) -> list[CacheEntry]:
        """Every cached file with its expiry, sorted by path."""
        out = []
        for kind, suffix in _KINDS.items():
            folder = self.root / ("nvidia" if kind == "nvidia-rim" else kind.split("-")[0])
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                name = path.name
                if name.startswith(".") or not name.endswith(suffix):
                    continue
                if kind == "amd-vcek" and not name.startswith("vcek-"):
                    continue
                if kind == "intel" and path.suffix != ".json":
                    continue
                out.append(CacheEntry(kind, name[: -len(suffix)], path, expiry_of(kind, path.read_bytes())))
        return sorted(out, key=lambda e: str(e.path))
