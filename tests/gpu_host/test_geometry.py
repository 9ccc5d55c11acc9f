"""cchet.gpu.geometry.plan: launches never use more thread blocks than the device holds resident."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cchet.gpu.geometry import DEFAULT_TARGET_BLOCKS, Geometry, plan


def test_default_is_an_h100() -> None:
    assert DEFAULT_TARGET_BLOCKS == 4 * 132
    g = plan(1, 64 << 20)  # one 64 MiB chunk: about 528 segments, never more
    assert g.max_blocks == 528 and g.segments <= 528 and g.grid(1) == g.segments
    assert plan(5, 1 << 20).grid(5) <= 528  # 5 x ceil(528 / 5) would be 530


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.integers(1, 5000),
    log2=st.integers(12, 26),
    sms=st.integers(1, 200),
    per_sm=st.integers(1, 8),
    target=st.none() | st.integers(1, 5000),
)
def test_grids_never_exceed_resident_blocks(chunks: int, log2: int, sms: int, per_sm: int, target: int | None) -> None:
    g = plan(chunks, 1 << log2, target_blocks=target, sms=sms, blocks_per_sm=per_sm)
    resident = sms * per_sm
    assert g.max_blocks == resident
    for n in {1, chunks // 2 or 1, chunks}:
        assert 1 <= g.grid(n) <= resident and 1 <= g.finish_grid(n) <= resident
    # The split itself aims at no more work items than the device holds (one chunk each at least).
    assert chunks * g.segments <= max(chunks, resident)
    m = (1 << log2) // 16
    assert g.segments * g.segment_blocks >= m > (g.segments - 1) * g.segment_blocks


def test_few_chunks_are_split_to_fill_the_device() -> None:
    g = plan(2, 1 << 20, sms=132, blocks_per_sm=4)
    assert g.segments == 256 and g.grid(2) == 512  # 65536 blocks a chunk, cut into 256-block segments
    g = plan(1000, 1 << 20, sms=132, blocks_per_sm=4)
    assert g.segments == 1 and g.grid(1000) == 528  # blocks loop over the chunks


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        plan(0, 4096)
    with pytest.raises(ValueError):
        plan(1, 4096, sms=0)
    with pytest.raises(ValueError):
        Geometry(lanes=256, segment_blocks=256, segments=1, max_blocks=0)
