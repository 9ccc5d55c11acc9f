"""The sealed-stream framing, written once over :class:`cchet.hazmat.aead.SegmentCipher`.

:class:`ChunkCipher` seals and opens runs of chunks of one stream, in parallel: the chunks of a batch
are cut into one contiguous run per thread (the calling thread takes the first run), because a task per
chunk costs a third of the throughput in scheduling. Small batches stay on the calling thread.

Every backend goes through this one module, so the OpenSSL, pycryptodome and GPU paths agree byte for byte.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from cchet.crypto import format as fmt
from cchet.errors import IntegrityError
from cchet.hazmat.aead import SegmentCipher, new_cipher
from cchet.hazmat.keys import DataKey, data_key_bytes

__all__ = ["MIN_BYTES_PER_THREAD", "ChunkCipher", "StreamChunks", "default_threads", "zero"]

# Below this much work per thread, handing chunks to another thread costs more than it saves.
MIN_BYTES_PER_THREAD = 1 << 20

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def default_threads() -> int:
    """The number of cores this process may run on."""
    return len(os.sched_getaffinity(0))


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size  # noqa: PLW0603 - one lazily created pool per process
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cchet-aead")
            _pool_size = workers
        return _pool


def zero(buf: memoryview) -> None:
    """Overwrite a writable buffer with zeros in place."""
    if len(buf):
        np.frombuffer(buf, dtype=np.uint8)[:] = 0


def _runs(count: int, parts: int) -> list[tuple[int, int]]:
    base, extra = divmod(count, parts)
    runs, start = [], 0
    for p in range(parts):
        end = start + base + (1 if p < extra else 0)
        runs.append((start, end))
        start = end
    return runs


class StreamChunks:
    """Seals and opens the chunks of one stream given what a sealing device is given: the stream key, the
    chunk AAD and the nonce prefix (:class:`ChunkCipher` derives them from a data key and a header).

    Callers hand it batches of whole chunks; it decides nothing about where a stream ends beyond the
    ``final`` flag it is given, so the one-shot and streaming APIs share it.
    """

    __slots__ = ("_aad", "_cipher", "_prefix", "chunk_size", "threads")

    def __init__(
        self,
        stream_key: bytes,
        aad: bytes,
        nonce_prefix: bytes,
        chunk_size: int,
        *,
        threads: int | None = None,
        backend: str | None = None,
    ) -> None:
        self.chunk_size = chunk_size
        self.threads = _check_threads(threads)
        self._cipher: SegmentCipher = new_cipher(stream_key, backend)
        self._aad = aad
        self._prefix = nonce_prefix

    def _parallel(self, count: int, nbytes: int, run: Callable[[int, int], bool]) -> bool:
        parts = max(1, min(self.threads, count, nbytes // MIN_BYTES_PER_THREAD))
        if parts == 1:
            return run(0, count)
        ranges = _runs(count, parts)
        pool = _executor(parts - 1)
        futures: list[Future[bool]] = [pool.submit(run, lo, hi) for lo, hi in ranges[1:]]
        ok = run(*ranges[0])
        for f in futures:
            ok = f.result() and ok
        return ok

    def seal_chunks(self, src: memoryview, dst: memoryview, first_index: int, *, final: bool) -> int:
        """Seal ``src`` (whole chunks; only a final batch may end short or be a single empty chunk)
        into ``dst`` as chunks ``first_index...``; returns the sealed bytes written."""
        cs, step = self.chunk_size, self.chunk_size + fmt.TAG_SIZE
        n = len(src)
        count = max(1, -(-n // cs))
        if not final and n % cs:
            raise AssertionError("only the final batch may hold a partial chunk")
        last_index = first_index + count - 1 if final else -1
        seal, prefix, aad = self._cipher.seal_into, self._prefix, self._aad

        def run(lo: int, hi: int) -> bool:
            for j in range(lo, hi):
                i = first_index + j
                p = src[j * cs : min(n, (j + 1) * cs)]
                seal(
                    fmt.chunk_nonce(prefix, i, i == last_index),
                    aad,
                    p,
                    dst[j * step : j * step + len(p) + 16],
                )
            return True

        self._parallel(count, n, run)
        return n + count * fmt.TAG_SIZE

    def open_chunks(self, src: memoryview, dst: memoryview, first_index: int, *, final: bool) -> int:
        """Open sealed chunks ``first_index...`` from ``src`` into ``dst``; returns plaintext bytes.

        All chunks are checked before this returns. On any tag failure the whole of ``dst`` that this
        batch would fill is zeroed and :class:`~cchet.IntegrityError` is raised.
        """
        cs, step = self.chunk_size, self.chunk_size + fmt.TAG_SIZE
        m = len(src)
        count = max(1, -(-m // step))
        plain = m - count * fmt.TAG_SIZE
        last_index = first_index + count - 1 if final else -1
        open_, prefix, aad = self._cipher.open_into, self._prefix, self._aad
        failed = threading.Event()

        def run(lo: int, hi: int) -> bool:
            for j in range(lo, hi):
                if failed.is_set():
                    return False
                i = first_index + j
                c = src[j * step : min(m, (j + 1) * step)]
                nonce = fmt.chunk_nonce(prefix, i, i == last_index)
                if not open_(nonce, aad, c, dst[j * cs : j * cs + len(c) - fmt.TAG_SIZE]):
                    failed.set()
                    return False
            return True

        if not self._parallel(count, plain, run):
            zero(dst[:plain])
            raise IntegrityError()
        return plain


class ChunkCipher(StreamChunks):
    """:class:`StreamChunks` of the stream ``header`` describes, under data key ``key`` and ``context``."""

    __slots__ = ("header", "header_bytes")

    def __init__(
        self,
        key: DataKey,
        header: fmt.Header,
        context: bytes,
        *,
        threads: int | None = None,
        backend: str | None = None,
    ) -> None:
        self.header = header
        self.header_bytes = header.pack()
        super().__init__(
            fmt.stream_key(data_key_bytes(key), header),
            fmt.chunk_aad(self.header_bytes, context),
            header.nonce_prefix,
            header.chunk_size,
            threads=threads,
            backend=backend,
        )


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return threads
