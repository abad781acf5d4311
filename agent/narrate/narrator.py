"""Continuous narration from the tracks, without the language model (issue 21).

Tracker events (onset, update, offset) and track snapshots in; short sentences out, only when
something changed: "A dog started barking on your left, about 2 m away.", "The siren has
moved behind you.", "The dog stopped.". A listener (a hearing-device wearer) can follow one
sentence at a time, so the narrator is rate-limited: news waits for its slot, and while it
waits it is merged (onsets that come together make one sentence), superseded (a sentence
always says where a source is *now*) or dropped when stale (a source that ended before it
was announced, or news older than max_age_s). Nothing queues forever.

Chatter guards: a move is said only when the source's region (sector or clock hour) changed,
stayed changed for move_hold_s and the source moved move_min_deg since it was last spoken of
(a source wobbling on a sector border says nothing); a source that went quiet and came back
within resume_window_s at the same place is the same source (the tracker gives it a new id
after its hold time; the narrator says neither "stopped" nor "started"). Time comes only
from the t_s arguments: the same event stream gives the same sentences (replay tests).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.core.errors import BinauraError, ConfigError, check_known_keys, check_numbers
from agent.core.geometry import great_circle_deg
from agent.core.labels import URGENCY
from agent.narrate.phrases import STYLES, Wording, distance_phrase, join_and, phrases_of, sentence
from agent.track.events import Event, NarrationEvent, OffsetEvent, OnsetEvent, UpdateEvent
from agent.track.tracker import Track

_TIME_EPS_S = 1e-6  # slack on time comparisons: stream times are sums of float periods


@dataclass
class NarrationConfig:
    """Every threshold of the narrator; each field's comment says what it guards against.
    Defaults suit the tracker's defaults (onset 0.2 s after a source starts, offset 1 s after
    it ends) and a listener who hears one short sentence at a time."""

    style: str = "words"  # words | clock | degrees
    degrees_step_deg: float = 5.0  # degrees style rounds to this: the encoder is not finer
    clearly_above_deg: float = 35.0  # "above you" from this elevation (below: mirrored)
    overhead_deg: float = 65.0  # from this elevation only "above you", no azimuth
    say_distance: bool = True  # "about 2 m away" in single-onset sentences
    min_interval_s: float = 1.5  # between any two sentences: time to hear one out
    merge_window_s: float = 0.2  # an onset waits this long for others to share its sentence
    track_cooldown_s: float = 3.0  # between two sentences about one source
    move_hold_s: float = 1.0  # a new region must hold this long before a move is said
    move_min_deg: float = 20.0  # ... and the source must have moved this far since last said
    narrate_offsets: bool = True
    offset_min_duration_s: float = 2.0  # "stopped" only for sources heard this long (not a bark)
    resume_window_s: float = 2.0  # an ended source back this soon at the same place is the same
    resume_max_deg: float = 30.0  # ... "the same place": within this angle of where it ended
    max_age_s: float = 6.0  # news not said within this long is dropped
    max_pending: int = 16  # pending news items at most (bounded memory); the oldest are dropped
    max_listed: int = 3  # sources named in one merged sentence; the rest are counted

    def validate(self) -> NarrationConfig:
        """Check every field; raise one ConfigError that names every bad value."""
        p: list[str] = []

        def check(names, ok, rule):
            check_numbers(self, names, ok, rule, p)

        if self.style not in STYLES:
            p.append(f"style must be one of {list(STYLES)}, got {self.style!r}")
        for name in ("say_distance", "narrate_offsets"):
            if not isinstance(getattr(self, name), bool):
                p.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        check(("degrees_step_deg", "max_age_s"), lambda v: 0 < v < math.inf, "> 0")
        check(("clearly_above_deg", "overhead_deg"), lambda v: 0 < v <= 90, "in (0, 90]")
        check(("min_interval_s", "merge_window_s", "track_cooldown_s", "move_hold_s", "offset_min_duration_s",
               "resume_window_s"), lambda v: 0 <= v < math.inf, ">= 0")
        check(("move_min_deg", "resume_max_deg"), lambda v: 0 <= v <= 180, "in [0, 180]")
        check(("max_pending", "max_listed"), lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        if not p:
            if self.overhead_deg < self.clearly_above_deg:
                p.append(f"overhead_deg ({self.overhead_deg}) must be >= clearly_above_deg ({self.clearly_above_deg})")
            if self.max_age_s <= self.merge_window_s or self.max_age_s <= self.resume_window_s:
                p.append(f"max_age_s ({self.max_age_s}) must exceed merge_window_s ({self.merge_window_s}) and "
                         f"resume_window_s ({self.resume_window_s}): news waits that long before it is due")
        if p:
            raise ConfigError(p, "narration config")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> NarrationConfig:
        check_known_keys(cls, d, "narration config")
        return cls(**d).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def wording(self) -> Wording:
        return Wording(self.style, self.degrees_step_deg, self.clearly_above_deg, self.overhead_deg)


@dataclass
class _Source:
    """One source as narrated (private): where it is now, what was last said of it, and the
    region it may be moving into. Survives a resume under a new track id."""

    track_id: int
    label: str
    t_start: float
    az: float
    el: float
    distance_m: float | None
    t_onset: float  # when its onset was raised: the onset is pending until `said`
    said: bool = False
    said_region: tuple | None = None
    said_az: float = 0.0
    said_el: float = 0.0
    t_said: float = -math.inf
    cand_region: tuple | None = None
    cand_since: float = 0.0
    t_offset: float | None = None  # set once ended: then it waits for a resume, or its "stopped"
    say_stop: bool = False


class Narrator:
    """Tracker events in, narration events out. Call `update` once per hop, in time order."""

    def __init__(self, config: NarrationConfig | None = None):
        self.config = (config or NarrationConfig()).validate()
        self.wording = self.config.wording()
        self.reset()

    def reset(self) -> None:
        self._live: dict[int, _Source] = {}
        self._ended: list[_Source] = []  # announced sources that ended, until resumed or done
        self.t_s: float | None = None
        self._t_last = -math.inf
        self._n = dict.fromkeys(("sentences", "onsets_said", "moves_said", "offsets_said", "resumed",
                                 "dropped_stale", "dropped_overflow"), 0)

    def counters(self) -> dict[str, int]:
        """How much was said, merged away and dropped since the start (for health events)."""
        return {f"narration_{k}": v for k, v in self._n.items()}

    def update(self, t_s: float, events: Iterable[Event], tracks: Sequence[Track] | None = None
               ) -> list[NarrationEvent]:
        """One hop: the tracker events it raised (any others are ignored) and, when given, the
        tracker's confirmed live tracks after it (fresher positions than update events, which
        come only per 10 deg). Returns at most one sentence, stamped t_s."""
        t_s = float(t_s)
        if not math.isfinite(t_s) or (self.t_s is not None and t_s < self.t_s - _TIME_EPS_S):
            raise BinauraError(f"narration time {t_s} s must be finite and not before the previous ({self.t_s} s)")
        self.t_s = t_s
        for e in events:
            if isinstance(e, OnsetEvent):
                self._onset(t_s, e)
            elif isinstance(e, UpdateEvent) and e.track_id in self._live:
                self._moved_to(self._live[e.track_id], e.azimuth_deg, e.elevation_deg, e.distance_m)
            elif isinstance(e, OffsetEvent):
                self._offset(t_s, e)
        for tr in tracks or ():
            if tr.track_id in self._live:
                self._moved_to(self._live[tr.track_id], tr.azimuth_deg, tr.elevation_deg, tr.distance_m)
        for s in self._live.values():
            self._watch_region(t_s, s)
        self._drop_stale(t_s)
        if t_s - self._t_last < self.config.min_interval_s - _TIME_EPS_S:
            return []
        out = self._onsets_due(t_s) or self._offsets_due(t_s) or self._move_due(t_s)
        if out:
            self._t_last = t_s
            self._n["sentences"] += 1
        return out

    # events in

    def _onset(self, t_s: float, e: OnsetEvent) -> None:
        cfg = self.config
        t_s = min(t_s, e.t_s)  # the event's own time: a long hop does not delay or age it
        back = [s for s in self._ended if s.label == e.label and t_s - s.t_offset <= cfg.resume_window_s + _TIME_EPS_S
                and great_circle_deg(s.az, s.el, e.azimuth_deg, e.elevation_deg) <= cfg.resume_max_deg]
        if back:  # the same source after a pause longer than the tracker's hold: carry on silently
            s = min(back, key=lambda s: (great_circle_deg(s.az, s.el, e.azimuth_deg, e.elevation_deg), s.track_id))
            self._ended.remove(s)
            s.track_id, s.t_offset, s.say_stop = e.track_id, None, False
            self._n["resumed"] += 1
        else:
            s = _Source(e.track_id, e.label, e.t_start, e.azimuth_deg, e.elevation_deg, e.distance_m, t_s)
        self._moved_to(s, e.azimuth_deg, e.elevation_deg, e.distance_m)
        self._live[e.track_id] = s

    def _offset(self, t_s: float, e: OffsetEvent) -> None:
        s = self._live.pop(e.track_id, None)
        t_s = min(t_s, e.t_s)
        if s is None:
            return
        if not s.said:  # ended before its onset was said: old news, say nothing of it
            self._n["dropped_stale"] += 1
            return
        s.t_offset = t_s
        lasted_s = (e.t_end if e.t_end is not None else t_s) - s.t_start
        s.say_stop = self.config.narrate_offsets and lasted_s >= self.config.offset_min_duration_s - _TIME_EPS_S
        self._ended.append(s)

    @staticmethod
    def _moved_to(s: _Source, az: float, el: float, distance_m: float | None) -> None:
        s.az, s.el = float(az), float(el)
        if distance_m is not None:
            s.distance_m = float(distance_m)

    def _watch_region(self, t_s: float, s: _Source) -> None:
        if not s.said:
            return
        r = self.wording.region(s.az, s.el)
        if r == s.said_region:
            s.cand_region = None
        elif r != s.cand_region:
            s.cand_region, s.cand_since = r, t_s

    def _drop_stale(self, t_s: float) -> None:
        cfg = self.config
        for s in self._ended:
            if s.say_stop and t_s - s.t_offset > cfg.max_age_s + _TIME_EPS_S:
                s.say_stop = False
                self._n["dropped_stale"] += 1
        self._ended = [s for s in self._ended if s.say_stop or t_s - s.t_offset <= cfg.resume_window_s + _TIME_EPS_S]
        for s in self._live.values():
            if not s.said and t_s - s.t_onset > cfg.max_age_s + _TIME_EPS_S:
                s.said = True  # never announced now; still followed, so that it stays quiet
                self._mark_said(s, t_s)
                self._n["dropped_stale"] += 1
        pending = sorted([(s.t_onset, s.track_id, s) for s in self._live.values() if not s.said]
                         + [(s.t_offset, s.track_id, s) for s in self._ended if s.say_stop], key=lambda x: x[:2])
        for _, _, s in pending[:max(0, len(pending) - cfg.max_pending)]:
            if s.t_offset is None:
                s.said = True
                self._mark_said(s, t_s)
            else:
                s.say_stop = False
            self._n["dropped_overflow"] += 1

    # sentences out

    def _mark_said(self, s: _Source, t_s: float) -> None:
        s.said, s.t_said, s.cand_region = True, t_s, None
        s.said_region, s.said_az, s.said_el = self.wording.region(s.az, s.el), s.az, s.el

    def _event(self, t_s: float, text: str, about: list[_Source]) -> list[NarrationEvent]:
        one = about[0] if len(about) == 1 else None
        return [NarrationEvent(t_s=t_s, text=sentence(text), track_id=None if one is None else one.track_id,
                               label=None if one is None else one.label)]

    def _onsets_due(self, t_s: float) -> list[NarrationEvent]:
        new = [s for s in self._live.values() if not s.said]
        if not new or t_s - min(s.t_onset for s in new) < self.config.merge_window_s - _TIME_EPS_S:
            return []
        new.sort(key=lambda s: (-URGENCY.get(s.label, 0), s.t_onset, s.track_id))
        for s in new:
            self._mark_said(s, t_s)
        self._n["onsets_said"] += len(new)
        if len(new) == 1:
            s = new[0]
            where = [self.wording.at(s.az, s.el)]
            if self.config.say_distance and distance_phrase(s.distance_m):
                where.append(distance_phrase(s.distance_m))
            return self._event(t_s, f"{phrases_of(s.label).started} {', '.join(where)}", new)
        listed = new[:self.config.max_listed]
        nouns, parts, seen = [], [], {}
        for s in listed:
            ph, k = phrases_of(s.label), sum(x.label == s.label for x in listed)
            seen[s.label] = seen.get(s.label, 0) + 1
            nouns.append(ph.noun if seen[s.label] == 1 else ph.another)
            the = ph.the if k == 1 else ph.the.replace("the ", f"the {_ordinal(seen[s.label])} ", 1)
            parts.append(f"{the} {self.wording.at(s.az, s.el)}")
        rest = len(new) - len(listed)
        if rest:
            nouns.append(f"{rest} more sound{'s' if rest > 1 else ''}")
        return self._event(t_s, f"{join_and(nouns)} started: {', '.join(parts)}", new)

    def _offsets_due(self, t_s: float) -> list[NarrationEvent]:
        cfg = self.config
        due = [s for s in self._ended if s.say_stop and t_s - s.t_offset >= cfg.resume_window_s - _TIME_EPS_S
               and t_s - s.t_said >= cfg.track_cooldown_s - _TIME_EPS_S]
        if not due:
            return []
        due.sort(key=lambda s: (-URGENCY.get(s.label, 0), s.t_offset, s.track_id))
        for s in due:
            s.say_stop = False
        self._n["offsets_said"] += len(due)
        if len(due) == 1:
            return self._event(t_s, phrases_of(due[0].label).stopped, due)
        names = [phrases_of(s.label).the for s in due[:cfg.max_listed]]
        rest = len(due) - len(names)
        if rest:
            names.append(f"{rest} more sound{'s' if rest > 1 else ''}")
        return self._event(t_s, f"{join_and(names)} stopped", due)

    def _move_due(self, t_s: float) -> list[NarrationEvent]:
        cfg = self.config
        due = [s for s in self._live.values() if s.said and s.cand_region is not None
               and t_s - s.cand_since >= cfg.move_hold_s - _TIME_EPS_S
               and t_s - s.t_said >= cfg.track_cooldown_s - _TIME_EPS_S
               and great_circle_deg(s.az, s.el, s.said_az, s.said_el) >= cfg.move_min_deg - _TIME_EPS_S]
        if not due:
            return []
        s = min(due, key=lambda s: (-URGENCY.get(s.label, 0), s.cand_since, s.track_id))
        self._mark_said(s, t_s)
        self._n["moves_said"] += 1
        ph = phrases_of(s.label)
        to = self.wording.to(s.az, s.el)
        verb = "have" if ph.plural else "has"
        if to is None:
            text = f"{ph.the} {verb} moved and {'are' if ph.plural else 'is'} now {self.wording.at(s.az, s.el)}"
        else:
            text = f"{ph.the} {verb} moved {to}"
        return self._event(t_s, text, [s])


def _ordinal(n: int) -> str:
    words = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
    return words[n - 1] if n <= len(words) else f"{n}th"
