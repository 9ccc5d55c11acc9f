"""Bounded reading of evidence bytes: every short read becomes an :class:`EvidenceFormatError`.

A :class:`Cursor` walks a ``bytes`` object front to back. Each read names the field it is reading, so a
truncated or malformed input raises an error that says which field, at which absolute offset, was wrong.
"""

from __future__ import annotations

from cchet.errors import EvidenceFormatError

__all__ = ["Cursor", "require_zero"]


class Cursor:
    """A read position inside ``data``; ``base`` is added to offsets reported in errors."""

    __slots__ = ("_data", "_pos", "base")

    def __init__(self, data: bytes, *, base: int = 0) -> None:
        self._data = bytes(data)
        self._pos = 0
        self.base = base

    @property
    def offset(self) -> int:
        """The absolute offset of the next byte to be read."""
        return self.base + self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, field: str) -> bytes:
        """The next ``n`` bytes; raises :class:`EvidenceFormatError` naming ``field`` if fewer remain."""
        if n < 0 or n > self.remaining:
            raise EvidenceFormatError(f"needs {n} bytes, {self.remaining} remain", offset=self.offset, field=field)
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def u24(self, field: str) -> int:
        return int.from_bytes(self.take(3, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def u64(self, field: str) -> int:
        return int.from_bytes(self.take(8, field), "little")

    def rest(self) -> bytes:
        """Everything not yet read (possibly empty)."""
        return self.take(self.remaining, "rest")

    def sub(self, n: int, field: str) -> Cursor:
        """A cursor over the next ``n`` bytes, reporting absolute offsets."""
        start = self.offset
        return Cursor(self.take(n, field), base=start)


def require_zero(value: bytes, *, offset: int, field: str) -> bytes:
    """Returns ``value`` if every byte is zero, else raises :class:`EvidenceFormatError` naming ``field``."""
    if any(value):
        raise EvidenceFormatError("reserved bytes must be zero", offset=offset, field=field)
    return value
