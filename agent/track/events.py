"""Events the agent emits, and their JSON Lines form (schema "binaura-events-1", docs/events.md).

Every event is one JSON object on one line. All events carry the same common keys, in the
same order, with null where a key does not apply; narration and answer events add "text"
(and "question"), health events add "counters"; answer and warning events also carry "cues"
(what the input can tell, agent/core/cues.py; null where not known or not about the input).
Consumers must ignore keys they do not know: adding a key or an event type keeps the schema
name, while removing or renaming a key, or changing a unit or a meaning, makes it
"binaura-events-2".
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import IO, Any

from agent.core.cues import CueLimits
from agent.core.errors import BinauraError

SCHEMA = "binaura-events-1"
EVENT_TYPES = ("onset", "offset", "update", "narration", "answer", "health", "suggestion", "warning")
#: Keys every event carries, in the order they are written.
COMMON_KEYS = ("schema", "type", "t_s", "track_id", "label", "azimuth_deg", "elevation_deg",
               "distance_m", "confidence", "uncertainty_deg", "t_start", "t_end")
#: Keys only some event types carry.
EXTRA_KEYS = {"narration": ("text",), "answer": ("text", "question"), "health": ("counters",),
              "suggestion": ("text", "turn_deg"), "warning": ("text",)}
#: Keys added within binaura-events-1: written on every event of the type by this version,
#: absent from older files (check_event checks their form where present).
ADDED_KEYS = {"answer": ("cues",), "warning": ("cues",)}
#: Decimals written per key: 1 ms, 0.01 deg, 1 mm; the values themselves keep full precision.
_DECIMALS = {"t_s": 3, "t_start": 3, "t_end": 3, "azimuth_deg": 2, "elevation_deg": 2,
             "distance_m": 3, "confidence": 3, "uncertainty_deg": 2}


def _rounded(key: str, v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    if not math.isfinite(v):
        return None  # JSON has no NaN or infinity; an unknown value is null
    return round(v, _DECIMALS[key])


@dataclass(frozen=True)
class Event:
    """Base of every event: its time on the stream's clock (seconds since the stream began)."""

    t_s: float

    type = "event"  # class attribute, set by each subclass

    def to_json(self) -> dict[str, Any]:
        """The event as the documented JSON object (keys in COMMON_KEYS order, then extras)."""
        d: dict[str, Any] = dict.fromkeys(COMMON_KEYS)
        d["schema"] = SCHEMA
        d["type"] = self.type
        d["t_s"] = _rounded("t_s", self.t_s)
        return d


@dataclass(frozen=True)
class TrackEvent(Event):
    """A change in one source track. Directions follow the coordinate contract
    (ARCHITECTURE.md): azimuth CCW in (-180, 180], 0 ahead, +90 left; elevation +90 up."""

    track_id: int
    label: str
    azimuth_deg: float
    elevation_deg: float
    distance_m: float | None
    confidence: float
    uncertainty_deg: float
    t_start: float
    t_end: float | None = None

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d["track_id"] = int(self.track_id)
        d["label"] = str(self.label)
        for k in ("azimuth_deg", "elevation_deg", "distance_m", "confidence", "uncertainty_deg",
                  "t_start", "t_end"):
            d[k] = _rounded(k, getattr(self, k))
        return d


@dataclass(frozen=True)
class OnsetEvent(TrackEvent):
    """A track was confirmed: a source started. t_start is its first detection's time."""

    type = "onset"


@dataclass(frozen=True)
class UpdateEvent(TrackEvent):
    """A live track moved, or its periodic report fell due."""

    type = "update"


@dataclass(frozen=True)
class OffsetEvent(TrackEvent):
    """A track ended: unheard for the tracker's hold time. t_end is its last detection's time."""

    type = "offset"


@dataclass(frozen=True)
class NarrationEvent(Event):
    """A sentence about the scene; track_id names the track it speaks of, when one."""

    text: str
    track_id: int | None = None
    label: str | None = None

    type = "narration"

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d["track_id"] = None if self.track_id is None else int(self.track_id)
        d["label"] = self.label
        d["text"] = str(self.text)
        return d


def _cues_json(cues: CueLimits | None) -> dict[str, Any] | None:
    return None if cues is None else cues.to_json()


@dataclass(frozen=True)
class AnswerEvent(Event):
    """The answer to a question (typed or spoken), complete. cues: what the input heard so far
    can tell (front/back, elevation, bandwidth; agent/core/cues.py), None when not known."""

    text: str
    question: str
    cues: CueLimits | None = None

    type = "answer"

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d["text"] = str(self.text)
        d["question"] = str(self.question)
        d["cues"] = _cues_json(self.cues)
        return d


@dataclass(frozen=True)
class HealthEvent(Event):
    """Counters of the pipeline's health (overflows, gaps, retries, ...): name -> number."""

    counters: dict[str, int | float] = field(default_factory=dict)

    type = "health"

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d["counters"] = {str(k): v for k, v in sorted(self.counters.items())}
        return d


@dataclass(frozen=True)
class SuggestionEvent(Event):
    """A head turn that would settle a doubt: turn by turn_deg (+ = left, as azimuth) to hear
    whether track track_id is in front or behind (agent/track/fusion.py)."""

    text: str
    track_id: int
    label: str
    turn_deg: float

    type = "suggestion"

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d["track_id"] = int(self.track_id)
        d["label"] = str(self.label)
        d["text"] = str(self.text)
        d["turn_deg"] = round(float(self.turn_deg), 1)
        return d


@dataclass(frozen=True)
class WarningEvent(Event):
    """Something about the input the user should know (e.g. orientation samples refused or
    lost). cues: set on the warning that the input cannot carry front/back or elevation cues
    (agent/core/cues.py), None on other warnings."""

    text: str
    cues: CueLimits | None = None

    type = "warning"

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d["text"] = str(self.text)
        d["cues"] = _cues_json(self.cues)
        return d


def dumps(event: Event) -> str:
    """One event as one line of JSON (no newline)."""
    return json.dumps(event.to_json(), ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def check_event(obj: Any) -> list[str]:
    """What is wrong with a decoded event object against the schema (empty when nothing)."""
    if not isinstance(obj, dict):
        return [f"an event must be a JSON object, got {type(obj).__name__}"]
    p = []
    if obj.get("schema") != SCHEMA:
        p.append(f"schema is {obj.get('schema')!r}, expected {SCHEMA!r}")
    kind = obj.get("type")
    if kind not in EVENT_TYPES:
        p.append(f"type is {kind!r}, expected one of {list(EVENT_TYPES)}")
    missing = [k for k in COMMON_KEYS + EXTRA_KEYS.get(kind, ()) if k not in obj]
    if missing:
        p.append(f"missing key(s) {missing}")
    if not isinstance(obj.get("t_s"), (int, float)):
        p.append(f"t_s must be a number, got {obj.get('t_s')!r}")
    cues = obj.get("cues")
    if kind in ADDED_KEYS and cues is not None and not (
            isinstance(cues, dict) and isinstance(cues.get("front_back"), bool)
            and isinstance(cues.get("elevation"), bool) and isinstance(cues.get("bandwidth_hz"), (int, float))):
        p.append(f"cues must be null or an object with booleans front_back and elevation and a number "
                 f"bandwidth_hz, got {cues!r}")
    if kind in ("onset", "update", "offset"):
        for k in ("track_id", "label", "azimuth_deg", "elevation_deg", "confidence", "t_start"):
            if obj.get(k) is None:
                p.append(f"a {kind} event needs {k}")
        if (obj.get("t_end") is None) == (kind == "offset"):
            p.append("t_end is set on offset events only")
    return p


class EventWriter:
    """Writes events as JSON Lines to a path or an open text stream, one line each, flushed at
    once (a reader following the file sees every event as it happens)."""

    def __init__(self, target: str | os.PathLike | IO[str]):
        if hasattr(target, "write"):
            self._f, self._owned = target, False
        else:
            try:
                self._f = open(target, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
            except OSError as e:
                raise BinauraError(f"{target}: cannot open the events file ({e})") from e
            self._owned = True
        self.n_written = 0

    def write(self, event: Event) -> None:
        self._f.write(dumps(event) + "\n")
        self._f.flush()
        self.n_written += 1

    def write_all(self, events) -> None:
        for e in events:
            self.write(e)

    def close(self) -> None:
        if self._owned and not self._f.closed:
            self._f.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
