"""SealWriter and UnsealReader: writer rules, reader rules, seeking, and bounded memory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest

import cchet
from cchet import IntegrityError

KEY = cchet.DataKey.generate()
CS = 4096


def _sealed(data: bytes, **kw: object) -> bytes:
    sink = io.BytesIO()
    with cchet.SealWriter(KEY, sink, chunk_size=CS, **kw) as w:  # type: ignore[arg-type]
        w.write(data)
    return sink.getvalue()


def test_writer_refuses_all_use_after_an_error() -> None:
    w = cchet.SealWriter(KEY, io.BytesIO(), chunk_size=CS, length=10)
    with pytest.raises(ValueError, match="declared length"):
        w.write(b"x" * 11)
    with pytest.raises(ValueError, match="failed earlier"):
        w.write(b"x")
    w.close()


def test_writer_with_known_length_checks_it_on_close() -> None:
    w = cchet.SealWriter(KEY, io.BytesIO(), chunk_size=CS, length=10)
    w.write(b"x" * 9)
    with pytest.raises(ValueError, match="declared length 10 but 9"):
        w.close()
    assert w.closed


def test_writer_draws_a_new_salt_every_time() -> None:
    a, b = _sealed(b"same"), _sealed(b"same")
    assert a[24:56] != b[24:56] and a[56:63] != b[56:63]


def test_sink_errors_fail_the_writer() -> None:
    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        cchet.SealWriter(KEY, Full(), chunk_size=CS)


def test_reader_seeks_to_whole_chunks() -> None:
    data = os.urandom(10 * CS + 123)
    r = cchet.UnsealReader(KEY, io.BytesIO(_sealed(data)), threads=1)
    assert r.seekable() and r.plaintext_length == len(data)
    for pos in (0, 1, CS - 1, CS, 5 * CS + 17, len(data) - 1):
        assert r.seek(pos) == pos
        assert r.read(300) == data[pos : pos + 300]
        assert r.tell() == pos + len(data[pos : pos + 300])
    r.seek(-10, io.SEEK_END)
    assert r.read() == data[-10:]
    r.seek(len(data) + 5)
    assert r.read() == b""


def test_reader_seek_needs_a_seekable_source() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, b: bytes) -> None:
            self._b = io.BytesIO(b)

        def readable(self) -> bool:
            return True

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            return self._b.readinto(b)

    r = cchet.UnsealReader(KEY, Pipe(_sealed(b"abc")))
    assert not r.seekable()
    with pytest.raises(io.UnsupportedOperation):
        r.seek(0)
    assert r.read() == b"abc"


def test_reader_checks_the_size_of_a_seekable_source_before_decrypting() -> None:
    blob = cchet.seal(KEY, os.urandom(3 * CS), chunk_size=CS)
    with pytest.raises(cchet.SealedFormatError, match="truncated or extended"):
        cchet.UnsealReader(KEY, io.BytesIO(blob[:-1]))


def test_reader_refuses_use_after_a_failure() -> None:
    blob = bytearray(_sealed(os.urandom(CS * 2)))
    blob[-1] ^= 1
    r = cchet.UnsealReader(KEY, io.BytesIO(bytes(blob)))
    with pytest.raises(IntegrityError):
        r.read()
    with pytest.raises(ValueError, match="failed earlier"):
        r.read()


@pytest.mark.slow
def test_ten_gib_stream_passes_through_in_bounded_memory(report: list[str]) -> None:
    """10 GiB sealed by a SealWriter into a pipe and opened by an UnsealReader on the other end, in a
    fresh process whose peak RSS must stay under 400 MiB."""
    script = textwrap.dedent(
        """
        import io, os, sys, threading
        import cchet
        key = cchet.DataKey.generate()
        total = 10 << 30
        block = memoryview(os.urandom(1 << 20))
        r_fd, w_fd = os.pipe()
        def produce():
            with open(w_fd, "wb", buffering=0) as sink, cchet.SealWriter(key, sink) as w:
                for _ in range(total // len(block)):
                    w.write(block)
        t = threading.Thread(target=produce)
        t.start()
        seen = 0
        buf = bytearray(1 << 20)
        with open(r_fd, "rb", buffering=0) as src:
            reader = cchet.UnsealReader(key, src)
            view = memoryview(buf)
            while n := reader.readinto(buf):
                off = seen % len(block)
                assert view[:n] == block[off : off + n]
                seen += n
        t.join()
        assert seen == total, seen
        # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork and exec
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
        print(int(hwm.split()[1]) // 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr
    peak_mib = int(out.stdout.strip())
    report.append(f"10 GiB through SealWriter -> pipe -> UnsealReader: peak RSS {peak_mib} MiB")
    assert peak_mib < 400, f"peak RSS {peak_mib} MiB"
