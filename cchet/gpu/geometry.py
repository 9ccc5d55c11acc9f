"""How a launch cuts the chunks of a stream into work: threads, segments, thread blocks.

One thread block of ``lanes`` threads works on one *segment* of a chunk at a time: ``segment_blocks``
consecutive 16-byte blocks (a multiple of ``lanes``). Thread ``t`` takes blocks ``t, t + lanes, t + 2*lanes,
...`` of its segment, so a warp reads 512 contiguous bytes per step. A chunk of ``m`` blocks has
``ceil(m / segment_blocks)`` segments; its blocks sit at the *end* of that range and the zero blocks in
front contribute nothing to GHASH, so every segment's partial sum lines up on a whole power of H.

When a launch holds few chunks, each is cut into several segments (several thread blocks per chunk)
so the device has enough blocks to fill it; many chunks get one segment each.

The grid never holds more thread blocks than the device keeps resident at once (``sms`` multiprocessors
times ``blocks_per_sm``): each block of the kernels loops over (chunk, segment) work items with a stride
of the grid size, so the per-block prologue (the T-table) is paid once per block and a launch never ends
with a partial wave of blocks that waited for a free multiprocessor.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_BLOCKS_PER_SM",
    "DEFAULT_LANES",
    "DEFAULT_SMS",
    "DEFAULT_TARGET_BLOCKS",
    "Geometry",
    "plan",
]

DEFAULT_LANES = 256
# An H100 SXM: 132 SMs, and four resident blocks of the kernels on each (they are compiled for that:
# __launch_bounds__(256, 4) in kernels/aes_gcm.cu; 33 KiB of shared memory and 64 registers a thread).
DEFAULT_SMS = 132
DEFAULT_BLOCKS_PER_SM = 4
DEFAULT_TARGET_BLOCKS = DEFAULT_SMS * DEFAULT_BLOCKS_PER_SM


@dataclass(frozen=True, slots=True)
class Geometry:
    """The work split of one launch. ``segments`` is the per-chunk thread-block count of a full chunk;
    ``max_blocks`` is the most thread blocks a launch may use (what the device holds resident)."""

    lanes: int
    segment_blocks: int
    segments: int
    max_blocks: int = DEFAULT_TARGET_BLOCKS

    def __post_init__(self) -> None:
        if self.lanes < 1 or self.lanes & (self.lanes - 1):
            raise ValueError(f"lanes must be a power of two, got {self.lanes}")
        if self.segment_blocks < self.lanes or self.segment_blocks % self.lanes:
            raise ValueError(
                f"segment_blocks ({self.segment_blocks}) must be a positive multiple of lanes ({self.lanes})"
            )
        if self.segments < 1:
            raise ValueError(f"segments must be >= 1, got {self.segments}")
        if self.max_blocks < 1:
            raise ValueError(f"max_blocks must be >= 1, got {self.max_blocks}")

    @property
    def steps(self) -> int:
        """Blocks each thread handles in one segment (its Horner steps)."""
        return self.segment_blocks // self.lanes

    def grid(self, n_chunks: int) -> int:
        """Thread blocks of the segments kernel for a launch of ``n_chunks`` chunks: one per work item,
        at most ``max_blocks``."""
        return max(1, min(n_chunks * self.segments, self.max_blocks))

    def finish_grid(self, n_chunks: int) -> int:
        """Thread blocks of the finish kernel: one per chunk, at most ``max_blocks``."""
        return max(1, min(n_chunks, self.max_blocks))


def plan(
    chunks: int,
    chunk_size: int,
    *,
    lanes: int = DEFAULT_LANES,
    target_blocks: int | None = None,
    sms: int = DEFAULT_SMS,
    blocks_per_sm: int = DEFAULT_BLOCKS_PER_SM,
) -> Geometry:
    """The geometry for launches of up to ``chunks`` chunks of ``chunk_size`` bytes (a multiple of 16).

    ``sms * blocks_per_sm`` is what the device holds resident (:attr:`Geometry.max_blocks`); the split
    aims at ``target_blocks`` work items in all (default: that many, never more), never cuts a segment
    shorter than one block per thread, and launches never use more blocks than that. Raises
    ``ValueError`` for non-positive counts.
    """
    if chunks < 1 or chunk_size < 16 or chunk_size % 16:
        raise ValueError(f"need chunks >= 1 and chunk_size a positive multiple of 16, got {chunks}, {chunk_size}")
    if sms < 1 or blocks_per_sm < 1:
        raise ValueError(f"need sms >= 1 and blocks_per_sm >= 1, got {sms}, {blocks_per_sm}")
    resident = sms * blocks_per_sm
    target = resident if target_blocks is None else min(max(1, target_blocks), resident)
    m = chunk_size // 16
    max_segments = max(1, m // lanes)
    want = min(max_segments, max(1, target // chunks))
    seg = -(-m // want)
    seg = -(-seg // lanes) * lanes
    return Geometry(lanes=lanes, segment_blocks=seg, segments=-(-m // seg), max_blocks=resident)
