"""Per-stage timings of one bounce-buffer transfer, with an HTML table for notebooks.

Every span is one batch in one stage, in seconds from the start of the transfer. CPU spans are wall
clock; device spans come from events on the device's streams, placed on the same clock through an
origin event recorded when the transfer starts (exact on the fake device; on a GPU the origin's host
time is when it was queued on an idle stream, so device spans may sit a few microseconds late).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

__all__ = ["Span", "TransferStats"]


@dataclass(frozen=True, slots=True)
class Span:
    """Batch ``batch`` spent ``start`` .. ``end`` seconds (from the transfer's start) in ``stage``."""

    stage: str
    batch: int
    start: float
    end: float


@dataclass(slots=True)
class TransferStats:
    """What one transfer did. ``stages`` names its stages in pipeline order; ``simulated`` says whether
    the device was a fake one (then the numbers say nothing about a GPU)."""

    direction: str
    mode: str
    device: str
    simulated: bool
    nbytes: int
    chunk_size: int
    batches: int
    slots: int
    streams: int
    threads: int
    stages: tuple[str, ...]
    spans: list[Span] = field(default_factory=list)
    wall_seconds: float = 0.0
    aborted_at: int | None = None

    def busy_seconds(self, stage: str) -> float:
        """Total time batches spent in ``stage`` (overlapping batches counted once each)."""
        return sum(s.end - s.start for s in self.spans if s.stage == stage)

    def overlap_seconds(self, a: str, b: str) -> float:
        """Time during which some batch was in stage ``a`` while another batch was in stage ``b``."""
        total = 0.0
        for x in (s for s in self.spans if s.stage == a):
            for y in (s for s in self.spans if s.stage == b and s.batch != x.batch):
                total += max(0.0, min(x.end, y.end) - max(x.start, y.start))
        return total

    @property
    def gib_per_s(self) -> float:
        return self.nbytes / self.wall_seconds / 2**30 if self.wall_seconds > 0 else 0.0

    def __str__(self) -> str:
        """One line: direction, mode, device, size, time, throughput and each stage's busy time."""
        sim = " (SIMULATED device: protects nothing, timings say nothing about a GPU)" if self.simulated else ""
        stages = ", ".join(f"{st} {self.busy_seconds(st) * 1e3:.2f} ms" for st in self.stages)
        aborted = f"; aborted at batch {self.aborted_at}" if self.aborted_at is not None else ""
        return (
            f"BounceChannel {self.direction} ({self.mode}) on {self.device}{sim}: {self.nbytes} bytes in "
            f"{self.batches} batches, {self.wall_seconds * 1e3:.2f} ms, {self.gib_per_s:.2f} GiB/s; busy: {stages}"
            f"{aborted}"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(st)}</td><td>{sum(1 for s in self.spans if s.stage == st)}</td>"
            f"<td>{self.busy_seconds(st) * 1e3:.2f}</td></tr>"
            for st in self.stages
        )
        flag = " <b>SIMULATED device: protects nothing, timings say nothing about a GPU</b>" if self.simulated else ""
        aborted = f"<br>aborted at batch {self.aborted_at} (integrity failure)" if self.aborted_at is not None else ""
        return (
            f"<div><b>BounceChannel {html.escape(self.direction)}</b> ({html.escape(self.mode)}) on "
            f"{html.escape(self.device)}{flag}<br>{self.nbytes} bytes in {self.batches} batches, "
            f"{self.wall_seconds * 1e3:.2f} ms, {self.gib_per_s:.2f} GiB/s; {self.slots} slots, "
            f"{self.streams} streams, {self.threads} CPU threads{aborted}"
            f"<table><tr><th>stage</th><th>batches</th><th>busy ms</th></tr>{rows}</table></div>"
        )
