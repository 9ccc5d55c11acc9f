"""How a launch cuts the chunks of a stream into work: threads, segments, thread blocks.

One thread block of ``lanes`` threads owns one *segment* of a chunk: ``segment_blocks`` consecutive
16-byte blocks (a multiple of ``lanes``). Thread ``t`` takes blocks ``t, t + lanes, t + 2*lanes, ...``
of its segment, so a warp reads 512 contiguous bytes per step. A chunk of ``m`` blocks has
``ceil(m / segment_blocks)`` segments; its blocks sit at the *end* of that range and the zero blocks in
front contribute nothing to GHASH, so every segment's partial sum lines up on a whole power of H.

When a launch holds few chunks, each is cut into several segments (several thread blocks per chunk)
so the device has enough blocks to fill it; many chunks get one segment each.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LANES", "DEFAULT_TARGET_BLOCKS", "Geometry", "plan"]

DEFAULT_LANES = 256
# About four resident thread blocks on each of an H100's 132 SMs.
DEFAULT_TARGET_BLOCKS = 528


@dataclass(frozen=True, slots=True)
class Geometry:
    """The work split of one launch. ``segments`` is the per-chunk thread-block count of a full chunk."""

    lanes: int
    segment_blocks: int
    segments: int

    def __post_init__(self) -> None:
        if self.lanes < 1 or self.lanes & (self.lanes - 1):
            raise ValueError(f"lanes must be a power of two, got {self.lanes}")
        if self.segment_blocks < self.lanes or self.segment_blocks % self.lanes:
            raise ValueError(
                f"segment_blocks ({self.segment_blocks}) must be a positive multiple of lanes ({self.lanes})"
            )
        if self.segments < 1:
            raise ValueError(f"segments must be >= 1, got {self.segments}")

    @property
    def steps(self) -> int:
        """Blocks each thread handles in one segment (its Horner steps)."""
        return self.segment_blocks // self.lanes


def plan(
    chunks: int,
    chunk_size: int,
    *,
    lanes: int = DEFAULT_LANES,
    target_blocks: int = DEFAULT_TARGET_BLOCKS,
) -> Geometry:
    """The geometry for ``chunks`` chunks of ``chunk_size`` bytes (a multiple of 16).

    Aims at ``target_blocks`` thread blocks in all; never cuts a segment shorter than one block per
    thread. Raises ``ValueError`` for non-positive counts.
    """
    if chunks < 1 or chunk_size < 16 or chunk_size % 16:
        raise ValueError(f"need chunks >= 1 and chunk_size a positive multiple of 16, got {chunks}, {chunk_size}")
    m = chunk_size // 16
    max_segments = max(1, m // lanes)
    want = min(max_segments, max(1, -(-target_blocks // chunks)))
    seg = -(-m // want)
    seg = -(-seg // lanes) * lanes
    return Geometry(lanes=lanes, segment_blocks=seg, segments=-(-m // seg))
