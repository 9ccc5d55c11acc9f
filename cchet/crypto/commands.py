"""``cchet key new``, ``cchet seal`` and ``cchet unseal``: sealed files at rest.

Outputs are written to a temporary file beside the target and renamed into place only on success,
so a failed ``unseal`` leaves no partial plaintext behind (``-`` streams to stdout instead, where
earlier chunks of a stream that later fails may already have been written; the exit status says so).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cchet.crypto.keyfile import read_key_file, write_key_file
from cchet.crypto.oneshot import DEFAULT_CHUNK_SIZE
from cchet.crypto.stream import SealWriter, UnsealReader
from cchet.hazmat.keys import DataKey

__all__ = ["register"]

COPY_BUFFER = 8 << 20


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    key = sub.add_parser("key", help="manage data-key files")
    key_sub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    new = key_sub.add_parser("new", help="create a new data-key file (mode 0600, never overwrites)")
    new.add_argument("path", type=Path)
    new.set_defaults(run=_key_new)

    seal = sub.add_parser("seal", help="seal a file into a cchet sealed stream (format v1)")
    seal.add_argument("input", help="file to seal, or - for stdin")
    seal.add_argument("output", help="sealed file to write, or - for stdout")
    seal.add_argument("-k", "--key", type=Path, required=True, help="data-key file")
    seal.add_argument("--create-key", action="store_true", help="create the key file first (fails if it exists)")
    seal.add_argument("--context", default="", help="associated data the reader must repeat (UTF-8)")
    seal.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="power of two, 4 KiB..64 MiB")
    seal.set_defaults(run=_seal)

    unseal = sub.add_parser("unseal", help="open a cchet sealed stream")
    unseal.add_argument("input", help="sealed file, or - for stdin")
    unseal.add_argument("output", help="plaintext file to write, or - for stdout")
    unseal.add_argument("-k", "--key", type=Path, required=True, help="data-key file")
    unseal.add_argument("--context", default="", help="associated data given when sealing (UTF-8)")
    unseal.set_defaults(run=_unseal)


def _key_new(args: argparse.Namespace) -> int:
    key = DataKey.generate()
    write_key_file(args.path, key)
    print(f"wrote data key {key.key_id.hex()} to {args.path} (mode 0600)", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _input(name: str) -> Iterator[BinaryIO]:
    if name == "-":
        yield sys.stdin.buffer
        return
    with open(name, "rb") as f:
        yield f


@contextlib.contextmanager
def _output(name: str) -> Iterator[BinaryIO]:
    """The output stream; a file appears at ``name`` only if the block completes."""
    if name == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _seal(args: argparse.Namespace) -> int:
    if args.create_key:
        write_key_file(args.key, DataKey.generate())
    key = read_key_file(args.key)
    with _input(args.input) as src, _output(args.output) as dst:
        length = _known_length(src)
        with SealWriter(key, dst, context=args.context.encode(), chunk_size=args.chunk_size, length=length) as writer:
            shutil.copyfileobj(src, writer, COPY_BUFFER)
    return 0


def _unseal(args: argparse.Namespace) -> int:
    key = read_key_file(args.key)
    with _input(args.input) as src, _output(args.output) as dst:
        reader = UnsealReader(key, src, context=args.context.encode())
        shutil.copyfileobj(reader, dst, COPY_BUFFER)
    return 0


def _known_length(f: BinaryIO) -> int | None:
    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None
