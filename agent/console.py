"""What `binaura listen` prints for a person: one line per event, and the run's summary."""

from __future__ import annotations

import sys
from typing import IO

from agent.core.geometry import sector_of
from agent.core.labels import display
from agent.track.events import (
    AnswerEvent,
    Event,
    HealthEvent,
    NarrationEvent,
    OffsetEvent,
    OnsetEvent,
    SuggestionEvent,
    TrackEvent,
    WarningEvent,
)


def where(azimuth_deg: float, elevation_deg: float, distance_m: float | None) -> str:
    sector = sector_of(azimuth_deg)
    s = {"front": "ahead", "back": "behind"}.get(sector, sector)
    s += f" ({azimuth_deg:+.0f} deg"
    if abs(elevation_deg) >= 10:
        s += f", elevation {elevation_deg:+.0f} deg"
    return s + (")" if distance_m is None else f", {distance_m:.1f} m)")


class ConsoleSink:
    """Onsets, offsets, narration and answers as readable lines (updates and health only
    with `verbose`)."""

    def __init__(self, out: IO[str] | None = None, verbose: bool = False):
        self.out = out or sys.stdout
        self.verbose = verbose

    def write(self, e: Event) -> None:
        line = self.format(e)
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()

    def format(self, e: Event) -> str | None:
        t = f"{e.t_s:7.1f} s  "
        if isinstance(e, TrackEvent):
            if isinstance(e, OnsetEvent):
                return f"{t}+ #{e.track_id} {display(e.label)} {where(e.azimuth_deg, e.elevation_deg, e.distance_m)}"
            if isinstance(e, OffsetEvent):
                return f"{t}- #{e.track_id} {display(e.label)} ended ({e.t_end - e.t_start:.1f} s long)"
            if self.verbose:
                return f"{t}~ #{e.track_id} {display(e.label)} {where(e.azimuth_deg, e.elevation_deg, e.distance_m)}"
            return None
        if isinstance(e, NarrationEvent):
            return f"{t}{e.text}"
        if isinstance(e, AnswerEvent):
            return f"{t}Q: {e.question}\n{' ' * 11}A: {e.text}"
        if isinstance(e, SuggestionEvent):
            return f"{t}? {e.text}"
        if isinstance(e, WarningEvent):
            return f"{t}! {e.text}"
        if isinstance(e, HealthEvent) and self.verbose:
            return t + "health " + ", ".join(f"{k}={v}" for k, v in sorted(e.counters.items()))
        return None


def summarize(events: list[Event], duration_s: float | None = None) -> str:
    """What was heard where and when, one line per track (`--summary`), with the run's
    health problems, if any."""
    onsets = {e.track_id: e for e in events if isinstance(e, OnsetEvent)}
    offsets = {e.track_id: e for e in events if isinstance(e, OffsetEvent)}
    last = {}
    for e in events:
        if isinstance(e, TrackEvent):
            last[e.track_id] = e
    lines = []
    span = "" if duration_s is None else f" in {duration_s:.1f} s"
    lines.append(f"{len(onsets)} source track(s){span}:")
    for tid, on in sorted(onsets.items(), key=lambda kv: (kv[1].t_start, kv[0])):
        off = offsets.get(tid)
        end = f"{off.t_end:.1f}" if off is not None and off.t_end is not None else "..."
        pos = last.get(tid, on)
        lines.append(f"  #{tid} {display(on.label)}, {on.t_start:.1f}-{end} s, "
                     f"{where(pos.azimuth_deg, pos.elevation_deg, pos.distance_m)}")
    health = [e for e in events if isinstance(e, HealthEvent)]
    if health:
        bad = {k: v for k, v in health[-1].counters.items()
               if any(w in k for w in ("overflow", "underflow", "lost", "gap", "dropped", "reconnect"))
               and isinstance(v, (int, float)) and v}
        if bad:
            lines.append("health: " + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
    return "\n".join(lines)
