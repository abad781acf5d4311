"""What every capture source yields: timestamped blocks of two-channel PCM (the agent's
audio contract), and the protocol a source follows.

Time: `t_s` is the stream's clock, in seconds, of the block's first sample; 0 is the first
sample the source produced. Blocks of one source are contiguous on that clock: a block
starts where the one before ended (`t_s + n / rate_hz`); audio a source lost (an overflow,
a bridge gap) is filled with silence and flagged `gap`, so the clock never jumps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from agent.core.audio import N_CHANNELS
from agent.core.errors import BinauraError

#: Default block length: 0.1 s keeps latency low and per-block overhead small.
BLOCK_S = 0.1


@dataclass(frozen=True)
class PcmBlock:
    """samples: (2, n) float32, channels (L, R), full scale +-1. gap: silence standing in for
    audio that was lost (counted by the source)."""

    t_s: float
    rate_hz: int
    samples: np.ndarray
    gap: bool = False

    def __post_init__(self):
        s = self.samples
        if s.ndim != 2 or s.shape[0] != N_CHANNELS or s.dtype != np.float32:
            raise ValueError(f"PcmBlock samples must be float32 of shape (2, n), got {s.dtype} {s.shape}")
        if self.rate_hz <= 0:
            raise ValueError(f"PcmBlock rate_hz must be > 0, got {self.rate_hz}")

    @property
    def n(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n / self.rate_hz

    @property
    def t_end_s(self) -> float:
        return self.t_s + self.duration_s


@runtime_checkable
class Source(Protocol):
    """A capture source. `blocks()` yields PcmBlocks until the source ends (a file, a scene)
    or `close()` is called (a live device); `live` says whether it runs on the wall clock
    (then the consumer must keep up: a source counts what it drops). `counters()` are its
    health counters (overflows, underflows, gaps, reconnects, ...), all ints, for the
    `health` events; `describe()` is one line for the console ("mic: pulse, 48000 Hz")."""

    name: str
    live: bool
    rate_hz: int

    def blocks(self) -> Iterator[PcmBlock]: ...

    def counters(self) -> dict[str, int]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def check_block_s(block_s: float) -> float:
    """A block length in seconds, checked: blocks of 1 ms to 10 s."""
    if isinstance(block_s, bool) or not isinstance(block_s, (int, float)) or not 0.001 <= block_s <= 10.0:
        raise BinauraError(f"block_s must be a number of seconds in [0.001, 10], got {block_s!r}")
    return float(block_s)
