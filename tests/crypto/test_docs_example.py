"""The worked example in docs/format.md is exactly what cchet produces and opens."""

from __future__ import annotations

import re

import cchet
from cchet.crypto import format as fmt
from cchet.crypto.oneshot import seal_stream_into
from cchet.hazmat import data_key_from_bytes
from tests.conftest import REPO


def test_worked_example_matches() -> None:
    text = (REPO / "docs" / "format.md").read_text().split("## Worked example")[1]
    blocks = re.findall(r"```\n(.*?)```", text, re.S)
    header_hex = "".join(line.split("  ")[0].replace(" ", "") for line in blocks[0].splitlines())
    derived = dict(re.findall(r"^(\w+)\s+=.*?([0-9a-f]{24,})", blocks[1].replace(" ", " "), re.M))
    chunk_hex = blocks[2].replace(" ", "").strip()

    key = data_key_from_bytes(bytes(range(32)), bytes.fromhex("00112233445566778899aabbccddeeff"))
    header = fmt.Header(
        chunk_log2=12,
        key_id=key.key_id,
        salt=bytes(range(0x20, 0x40)),
        nonce_prefix=bytes.fromhex("a0a1a2a3a4a5a6"),
        plaintext_length=5,
    )
    out = bytearray(93)
    seal_stream_into(key, header, memoryview(b"hello"), memoryview(out), b"example")
    assert out[:72].hex() == header_hex
    assert out[72:].hex() == chunk_hex
    assert fmt.stream_key(bytes(range(32)), header).hex() == derived["K"]
    assert fmt.chunk_aad(bytes(out[:72]), b"example").hex() == derived["AAD"]
    assert cchet.unseal(key, bytes(out), context=b"example") == b"hello"
