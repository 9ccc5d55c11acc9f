"""Tink's tamper set on sealed streams: every modification is caught, and nothing of it is released.

For each stream (0, 1, chunk-1, chunk, chunk+1 and many chunks; known and unknown length) and each
modification, ``unseal_into`` raises and leaves the destination zeroed, and ``UnsealReader`` (on a
seekable and on a non-seekable source) raises having emitted only authentic whole chunks that lie
before the first modified one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest

import cchet
from cchet import IntegrityError, SealedFormatError
from cchet.crypto import format as fmt
from cchet.hazmat import data_key_bytes, data_key_from_bytes

CS = 4096
STEP = CS + 16
KEY = cchet.DataKey.generate()
SAME_ID_OTHER_KEY = data_key_from_bytes(bytes(32), KEY.key_id)
SIZES = {"empty": 0, "one": 1, "chunk-1": CS - 1, "chunk": CS, "chunk+1": CS + 1, "many": 11 * CS + 7}
HEADER_FIELDS = {  # field: (offset, whether DESIGN.md names it a structural error)
    "magic": (0, True),
    "version": (4, True),
    "suite": (5, True),
    "chunk_log2": (6, True),
    "flags": (7, True),
    "key_id": (8, True),
    "salt": (24, False),
    "nonce_prefix": (56, False),
    "reserved": (63, True),
    "plaintext_length": (71, False),
}


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[bytes], bytes]
    first_bad_chunk: int  # no byte from this chunk on may be emitted
    structural: bool = False
    context: bytes = b"ctx"
    key: cchet.DataKey = KEY


def _flip(pos: int, bit: int = 0x80) -> Callable[[bytes], bytes]:
    def f(b: bytes) -> bytes:
        m = bytearray(b)
        m[pos] ^= bit
        return bytes(m)

    return f


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[72:]
    return blob[:72], [body[i : i + STEP] for i in range(0, len(body), STEP)]


def _rebuild(fn: Callable[[list[bytes]], list[bytes]]) -> Callable[[bytes], bytes]:
    def f(b: bytes) -> bytes:
        head, chunks = _chunks(b)
        return head + b"".join(fn(chunks))

    return f


def _cases(blob: bytes, other: bytes) -> list[Case]:
    _, chunks = _chunks(blob)
    n = len(chunks)
    cases: list[Case] = []
    for field, (off, structural) in HEADER_FIELDS.items():
        bit = 0x01 if field == "plaintext_length" else 0x80
        cases.append(Case(f"flip header {field}", _flip(off, bit), 0, structural))
    for i, chunk in enumerate(chunks):
        start = 72 + i * STEP
        if len(chunk) > 16:
            cases.append(Case(f"flip ciphertext of chunk {i}", _flip(start + len(chunk) // 2, 0x01), i))
        cases.append(Case(f"flip tag of chunk {i}", _flip(start + len(chunk) - 1, 0x01), i))
    if n > 1:
        cases += [
            Case("drop chunk 0", _rebuild(lambda c: c[1:]), 0),
            Case("drop a middle chunk", _rebuild(lambda c: c[: n // 2] + c[n // 2 + 1 :]), n // 2),
            Case("duplicate chunk 0", _rebuild(lambda c: c[:1] + c), 1),
            Case("swap chunks 0 and 1", _rebuild(lambda c: [c[1], c[0], *c[2:]]), 0),
            Case("truncate: final chunk removed", _rebuild(lambda c: c[:-1]), n - 2),
        ]
    for k in (1, 15, 16, 17):
        if len(blob) - k >= 72:
            cases.append(Case(f"truncate {k} bytes", lambda b, k=k: b[:-k], n - 1))
    if n > 1:
        for k in (1, 15):
            cases.append(
                Case(
                    f"final chunk cut to a {k}-byte tail", lambda b, k=k: b[: 72 + (n - 1) * STEP + k], n - 1
                )
            )
    cases += [
        Case("append 1 byte", lambda b: b + b"\x00", n - 1),
        Case("append 16 bytes", lambda b: b + bytes(16), n - 1),
        Case("append a copy of the last chunk", _rebuild(lambda c: [*c, c[-1]]), n - 1),
        Case("splice chunk 0 from another stream", _rebuild(lambda c: [_chunks(other)[1][0], *c[1:]]), 0),
        Case("wrong context", lambda b: b, 0, context=b"other"),
        Case("wrong key, same key id", lambda b: b, 0, key=SAME_ID_OTHER_KEY),
        Case("wrong key id", lambda b: b, 0, structural=True, key=cchet.DataKey.generate()),
    ]
    return cases


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        return self._b.readinto(b)


def _streams() -> list[tuple[str, bytes, bytes, bytes]]:
    out = []
    for label, n in SIZES.items():
        data = bytes((i * 7 + 3) % 251 for i in range(n))
        known = cchet.seal(KEY, data, context=b"ctx", chunk_size=CS)
        other = cchet.seal(KEY, data, context=b"ctx", chunk_size=CS)
        sink = io.BytesIO()
        with cchet.SealWriter(KEY, sink, context=b"ctx", chunk_size=CS, threads=1) as w:
            w.write(data)
        out.append((f"{label}/known", data, known, other))
        out.append((f"{label}/unknown", data, sink.getvalue(), other))
    return out


STREAMS = _streams()


def _check_reader(source: io.RawIOBase, case: Case, data: bytes) -> None:
    emitted = bytearray()
    with pytest.raises(IntegrityError):
        reader = cchet.UnsealReader(case.key, source, context=case.context, threads=1)
        while chunk := reader.read(1000):
            emitted += chunk
    assert bytes(emitted) == data[: len(emitted)], "reader emitted bytes that are not the authentic plaintext"
    assert len(emitted) <= case.first_bad_chunk * CS, (
        f"reader emitted {len(emitted)} bytes, reaching the bad chunk"
    )
    assert len(emitted) % CS == 0


@pytest.mark.parametrize(("label", "data", "blob", "other"), STREAMS, ids=[s[0] for s in STREAMS])
def test_every_modification_is_caught(
    label: str, data: bytes, blob: bytes, other: bytes, report: list[str]
) -> None:
    assert cchet.unseal(KEY, blob, context=b"ctx") == data
    cases = _cases(blob, other)
    for case in cases:
        bad = case.mutate(blob)
        dst = bytearray(b"\xaa" * (len(data) + 2 * STEP))
        expected = SealedFormatError if case.structural else IntegrityError
        with pytest.raises(expected) as info:
            cchet.unseal_into(case.key, bad, dst, context=case.context)
        if type(info.value) is IntegrityError:
            assert str(info.value) == str(IntegrityError()), "failures after key use must share one message"
        assert dst == bytes(len(dst)), f"{case.name}: destination not zeroed"
        _check_reader(io.BytesIO(bad), case, data)
        _check_reader(_Unseekable(bad), case, data)
    report.append(
        f"tamper set {label}: {len(cases)} modifications, each caught by unseal_into and both readers"
    )


def test_key_after_use_errors_do_not_name_the_cause() -> None:
    blob = cchet.seal(KEY, b"x" * 100, context=b"ctx", chunk_size=CS)
    messages = set()
    for mutate in (_flip(72 + 5, 1), _flip(len(blob) - 1, 1), _flip(30, 1)):
        with pytest.raises(IntegrityError) as info:
            cchet.unseal(KEY, mutate(blob), context=b"ctx")
        assert type(info.value) is IntegrityError
        messages.add(str(info.value))
    with pytest.raises(IntegrityError) as info:
        cchet.unseal(KEY, blob, context=b"wrong")
    messages.add(str(info.value))
    assert len(messages) == 1


def test_structural_errors_name_the_field() -> None:
    blob = cchet.seal(KEY, b"data", chunk_size=CS)
    for field, (off, structural) in HEADER_FIELDS.items():
        if not structural:
            continue
        with pytest.raises(SealedFormatError) as info:
            cchet.unseal(KEY, _flip(off)(blob))
        assert info.value.field == field
    with pytest.raises(SealedFormatError, match="header"):
        cchet.unseal(KEY, blob[:40])
    assert data_key_bytes(KEY) != data_key_bytes(SAME_ID_OTHER_KEY)
    assert fmt.HEADER_SIZE == 72
