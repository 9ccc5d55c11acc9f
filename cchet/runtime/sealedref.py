"""``SealedRef``: a Ray object reference to sealed data, and the descriptor that says what it must be.

The descriptor (producer function digest, producer call id, return index, key id, session id) is what a
consumer checks: it opens the object only under the context those values give, so an object swapped,
replayed from another call or another session, or moved to another slot fails to open.

``ray.get(sealed_ref)`` raises ``TypeError`` pointing to :func:`cchet.get`: a SealedRef is, to Ray, a list
whose iteration refuses, and ``ray.get`` iterates lists before anything else. ``.ref`` is the plain
``ray.ObjectRef`` for ``ray.wait`` and friends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from cchet.runtime.contexts import PUT_DIGEST, Role, context

__all__ = ["Descriptor", "SealedRef"]

_GET_HINT = (
    "a cchet.SealedRef holds sealed data that Ray cannot open: use cchet.get(ref) instead of ray.get(ref) "
    "(and ref.ref for ray.wait)"
)


@dataclass(frozen=True)
class Descriptor:
    """What a sealed object must be: who produced it, in which call and slot, under which key and session."""

    session_id: bytes
    producer_digest: bytes
    call_id: bytes
    index: int
    key_id: bytes

    def context(self) -> bytes:
        return context(Role.RET, self.session_id, self.producer_digest, self.call_id, self.index)

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id.hex(),
            "producer_digest": self.producer_digest.hex(),
            "call_id": self.call_id.hex(),
            "index": self.index,
            "key_id": self.key_id.hex(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Descriptor:
        return cls(
            bytes.fromhex(doc["session_id"]),
            bytes.fromhex(doc["producer_digest"]),
            bytes.fromhex(doc["call_id"]),
            int(doc["index"]),
            bytes.fromhex(doc["key_id"]),
        )


class SealedRef(list):  # type: ignore[type-arg]
    """A reference to a sealed Ray object. Pass it to other ``@cchet.remote`` functions, or open it with
    :func:`cchet.get`. Never opened by the driver on its way between tasks."""

    __slots__ = ("descriptor", "ref")

    def __init__(self, ref: Any, descriptor: Descriptor) -> None:
        super().__init__()
        self.ref = ref
        self.descriptor = descriptor

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(_GET_HINT)

    def __len__(self) -> int:
        raise TypeError(_GET_HINT)

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealedRef) and other.ref == self.ref and other.descriptor == self.descriptor

    def __hash__(self) -> int:  # type: ignore[override]
        return hash((self.ref, self.descriptor))

    def __repr__(self) -> str:
        d = self.descriptor
        call, key = d.call_id.hex()[:12], d.key_id.hex()[:12]
        return f"SealedRef(call={call}, index={d.index}, key={key}; open with cchet.get)"

    def _repr_html_(self) -> str:
        """A notebook view of the descriptor (all public values: ids and digests, never data or keys)."""
        d = self.descriptor
        producer = "cchet.put" if d.producer_digest == PUT_DIGEST else f"function {d.producer_digest.hex()[:16]}"
        rows = (
            ("produced by", producer),
            ("call", d.call_id.hex()),
            ("return index", str(d.index)),
            ("sealed under key", d.key_id.hex()),
            ("session", d.session_id.hex()),
        )
        cells = "".join(f"<tr><th style='text-align:left'>{k}</th><td><code>{v}</code></td></tr>" for k, v in rows)
        return (
            "<div class='cchet-sealedref'><b>SealedRef</b>: sealed in Ray's object store; tasks open it only "
            f"after attestation, the driver with <code>cchet.get</code><table>{cells}</table></div>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (SealedRef, (self.ref, self.descriptor))

    def __getitem__(self, item: Any) -> NoReturn:
        raise TypeError(_GET_HINT)
