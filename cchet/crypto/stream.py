"""Sealed streams larger than memory: :class:`SealWriter` and :class:`UnsealReader` over file objects.

Both hold a bounded number of chunks in memory (``batch`` chunks per thread, default 4), whatever
the stream's length, and seal or open each batch in parallel through the same framing code as
:func:`cchet.seal`.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from cchet.crypto import format as fmt
from cchet.crypto.buffers import as_context, readable_view
from cchet.crypto.engine import ChunkCipher, default_threads, zero
from cchet.crypto.oneshot import DEFAULT_CHUNK_SIZE, new_header, open_header
from cchet.errors import IntegrityError, SealedFormatError
from cchet.hazmat.keys import DataKey

__all__ = ["SealWriter", "UnsealReader"]

CHUNKS_PER_THREAD = 4


def _batch_chunks(threads: int | None) -> int:
    return CHUNKS_PER_THREAD * (threads or default_threads())


def _write_all(sink: BinaryIO, data: memoryview) -> None:
    while len(data):
        written = sink.write(data)
        if written is None:
            raise BlockingIOError("the sink is non-blocking and would block; give SealWriter a blocking sink")
        data = data[written:]


def _read_exact(source: BinaryIO, n: int, into: memoryview) -> int:
    """Read up to ``n`` bytes into ``into`` (straight into it when the source has ``readinto``); fewer only
    at end of stream."""
    got = 0
    readinto = getattr(source, "readinto", None)
    while got < n:
        if readinto is not None:
            count = readinto(into[got:n])
            if not count:
                break
            got += count
            continue
        chunk = source.read(n - got)
        if not chunk:
            break
        into[got : got + len(chunk)] = chunk
        got += len(chunk)
    return got


class SealWriter(io.RawIOBase):
    """Write plaintext, get a sealed stream in ``sink``. The sink is not closed by :meth:`close`.

    The header is written when the writer is made. With ``length=None`` the header says "unknown
    length" and the writer holds one chunk back so it knows which chunk is last; with a known
    ``length``, :meth:`close` raises ``ValueError`` unless exactly that many bytes were written.

    Writer rules: each chunk index is sealed once; after any error the writer refuses all further
    use, and the partial output in ``sink`` is not a valid stream (a retry must start a new writer,
    which draws a new salt). :meth:`close` must be called (or use ``with``): until then the last
    chunk is not written.
    """

    def __init__(
        self,
        key: DataKey,
        sink: BinaryIO,
        *,
        context: bytes = b"",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        length: int | None = None,
        threads: int | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if length is not None and not 0 <= length <= fmt.MAX_STREAM_BYTES:
            raise ValueError(f"length must be 0..{fmt.MAX_STREAM_BYTES}, got {length}")
        header = new_header(key, length, chunk_size)
        self._cipher = ChunkCipher(key, header, as_context(context), threads=threads, backend=backend)
        self._sink = sink
        self._length = length
        self._cs = header.chunk_size
        self._batch = _batch_chunks(threads) * self._cs
        self._buf = bytearray(self._batch + self._cs)
        self._fill = 0
        self._out = bytearray(_batch_chunks(threads) * (self._cs + fmt.TAG_SIZE))
        self._next_index = 0
        self._written = 0
        self._failed = False
        self._guard(lambda: _write_all(sink, memoryview(self._cipher.header_bytes)))

    def writable(self) -> bool:
        return True

    def _guard(self, action: Any) -> Any:
        if self._failed:
            raise ValueError("this SealWriter failed earlier and refuses further use: start a new stream")
        try:
            return action()
        except BaseException:
            self._failed = True
            raise

    def _flush_batch(self, final: bool) -> None:
        n = self._fill if final else self._batch
        src = memoryview(self._buf)[:n]
        out = memoryview(self._out)
        sealed = self._cipher.seal_chunks(src, out, self._next_index, final=final)
        _write_all(self._sink, out[:sealed])
        self._next_index += max(1, -(-n // self._cs))
        rest = self._fill - n
        buf = memoryview(self._buf)  # no temporary copy: the kept tail never overlaps where it goes (n >= rest)
        buf[:rest] = buf[n : self._fill]
        self._fill = rest

    def write(self, data: Any) -> int:
        """Buffer and seal ``data`` (any bytes-like object); returns ``len(data)``."""
        if self.closed:
            raise ValueError("write to a closed SealWriter")
        view = readable_view(data, "data")

        def do() -> int:
            total = len(view)
            if self._length is not None and self._written + total > self._length:
                raise ValueError(f"more than the declared length of {self._length} bytes written")
            if self._written + total > fmt.MAX_STREAM_BYTES:
                raise ValueError(f"stream exceeds the per-stream limit of {fmt.MAX_STREAM_BYTES} bytes")
            pos = 0
            while pos < total:
                take = min(total - pos, len(self._buf) - self._fill)
                self._buf[self._fill : self._fill + take] = view[pos : pos + take]
                self._fill += take
                pos += take
                if self._fill > self._batch:
                    self._flush_batch(final=False)
            self._written += total
            return total

        result: int = self._guard(do)
        return result

    def close(self) -> None:
        """Seal the held-back chunks, marking the last one final. Idempotent."""
        if self.closed:
            return
        try:
            if not self._failed:

                def finish() -> None:
                    if self._length is not None and self._written != self._length:
                        raise ValueError(
                            f"declared length {self._length} but {self._written} bytes were written; "
                            "the partial output is not a valid stream"
                        )
                    self._flush_batch(final=True)
                    self._sink.flush()

                self._guard(finish)
        finally:
            zero(memoryview(self._buf))
            super().close()


class UnsealReader(io.RawIOBase):
    """Read the plaintext of a sealed stream from ``source``, a batch of chunks at a time.

    Guarantees: no byte of a chunk is returned before that chunk's tag verifies; structural checks
    happen before the key is used. When ``source`` is seekable its size is checked against the header
    before anything is decrypted, and :meth:`seek` works (it opens whole chunks only).

    Limit: with a non-seekable source, truncation or trailing garbage shows only when the reader gets
    there, so earlier chunks may already have been returned (each of them authentic, in order); only
    the final ``IntegrityError`` says the stream was incomplete. Read to the end before trusting that you
    have the whole stream.
    """

    def __init__(
        self,
        key: DataKey,
        source: BinaryIO,
        *,
        context: bytes = b"",
        threads: int | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        head = bytearray(fmt.HEADER_SIZE)
        got = _read_exact(source, fmt.HEADER_SIZE, memoryview(head))
        header = open_header(key, memoryview(head)[:got])
        self._cipher = ChunkCipher(key, header, as_context(context), threads=threads, backend=backend)
        self._cs = header.chunk_size
        self._step = self._cs + fmt.TAG_SIZE
        self._layout: fmt.BodyLayout | None = None
        self._seekable = _is_seekable(source)
        if self._seekable:
            start = source.tell()
            end = source.seek(0, io.SEEK_END)
            source.seek(start)
            self._body_start = start
            self._layout = fmt.body_layout(header, end - start)
        elif header.plaintext_length is not None:
            self._layout = fmt.BodyLayout(header.plaintext_length, self._cs)
        self._batch_chunks = _batch_chunks(threads)
        self._sealed = bytearray(self._batch_chunks * self._step + 1)
        self._plain = bytearray(self._batch_chunks * self._cs)
        self._carry = 0  # look-ahead bytes already at the front of _sealed (unknown length only)
        self._next_index = 0
        self._avail = memoryview(self._plain)[:0]
        self._pos = 0  # plaintext offset of the next byte returned
        self._done = False
        self._failed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    @property
    def plaintext_length(self) -> int | None:
        """The plaintext length, when the header or a seekable source tells it."""
        return None if self._layout is None else self._layout.plaintext_length

    def _fail(self, error: IntegrityError) -> IntegrityError:
        self._failed = True
        zero(memoryview(self._plain))
        self._avail = memoryview(self._plain)[:0]
        return error

    def _load_known(self, layout: fmt.BodyLayout) -> tuple[int, int, bool]:
        first = self._next_index
        count = min(self._batch_chunks, layout.n_chunks - first)
        final = first + count == layout.n_chunks
        want = sum(layout.chunk_plain_len(i) + fmt.TAG_SIZE for i in range(first, first + count))
        got = _read_exact(self._source, want, memoryview(self._sealed))
        if got < want:
            raise SealedFormatError("length", f"the source ended {want - got} bytes early (truncated)")
        if final and not self._seekable and self._source.read(1):
            raise SealedFormatError("length", "bytes follow the last chunk (extended stream)")
        return want, count, final

    def _load_lookahead(self) -> tuple[int, int, bool]:
        want = self._batch_chunks * self._step
        sealed = memoryview(self._sealed)
        got = self._carry + _read_exact(self._source, want + 1 - self._carry, sealed[self._carry :])
        final = got <= want
        n = got if final else want
        if final:
            full, tail = divmod(n, self._step)
            if n == 0 and self._next_index == 0:
                raise SealedFormatError("length", "the stream has a header but no chunk")
            if n == 0 or 0 < tail < fmt.TAG_SIZE:
                raise SealedFormatError("length", "the stream ends inside a chunk (truncated)")
            if tail == fmt.TAG_SIZE and (full > 0 or self._next_index > 0):
                raise SealedFormatError("length", "empty last chunk after index 0")
        count = max(1, -(-n // self._step))
        return n, count, final

    def _load(self) -> None:
        if self._layout is not None:
            n, count, final = self._load_known(self._layout)
        else:
            n, count, final = self._load_lookahead()
        plain = self._cipher.open_chunks(
            memoryview(self._sealed)[:n], memoryview(self._plain), self._next_index, final=final
        )
        if self._layout is None and not final:
            self._sealed[0] = self._sealed[n]
            self._carry = 1
        self._next_index += count
        self._avail = memoryview(self._plain)[:plain]
        self._done = final

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with authentic plaintext; 0 at the end of the stream."""
        if self._failed:
            raise ValueError("this UnsealReader failed earlier; its stream is not authentic")
        if self.closed:
            raise ValueError("read from a closed UnsealReader")
        out = memoryview(buffer).cast("B")
        if not len(self._avail):
            if self._done:
                return 0
            try:
                self._load()
            except IntegrityError as e:
                raise self._fail(e) from None
        n = min(len(out), len(self._avail))
        out[:n] = self._avail[:n]
        self._avail = self._avail[n:]
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to a plaintext offset (seekable sources only); the next read opens that whole chunk."""
        if self._layout is None or not self._seekable:
            raise io.UnsupportedOperation("seek needs a seekable source")
        total = self._layout.plaintext_length
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: total}[whence]
        pos = base + offset
        if not pos >= 0:
            raise ValueError(f"negative seek position {pos}")
        index = min(pos // self._cs, self._layout.n_chunks - 1)
        self._source.seek(self._body_start + index * self._step)
        self._next_index = index
        self._done = False
        self._avail = memoryview(self._plain)[:0]
        self._pos = index * self._cs
        if pos > self._pos:
            skip = bytearray(min(pos, total) - self._pos)
            self.readinto(skip)
        self._pos = pos
        return pos

    def close(self) -> None:
        if not self.closed:
            zero(memoryview(self._plain))
        super().close()


def _is_seekable(source: BinaryIO) -> bool:
    try:
        return bool(source.seekable())
    except (AttributeError, ValueError):
        return False
