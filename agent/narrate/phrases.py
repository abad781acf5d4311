"""The words of narration: how each sound class is spoken of, and where-phrases in three styles.

Directions follow the coordinate contract (ARCHITECTURE.md): azimuth 0 ahead, +90 left,
-90 right, 180 behind; elevation +90 up. Three styles, because listeners differ (issue 21):
`words` ("on your left", "ahead and to your right"), `clock` ("at 9 o'clock": 12 ahead,
3 right, 6 behind, 9 left, as pilots and blind travellers are taught) and `degrees`
("90 degrees to your left"). Each where-phrase comes in two forms: where a thing *is*
("A dog started barking on your left") and where it *went* ("The siren has moved to your
left"); English needs both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.core.geometry import sector_of
from agent.core.labels import LABELS

STYLES = ("words", "clock", "degrees")


@dataclass(frozen=True)
class ClassPhrases:
    """How one class is spoken of: `started` is a whole clause ("a dog started barking"),
    `noun` names it in a list ("a dog"), `another` names a second one ("another dog"), `the`
    is the definite name ("the dog"), `stopped` a whole clause ("the dog stopped"), `plural`
    picks the verb ("the footsteps have moved")."""

    started: str
    noun: str
    the: str
    stopped: str
    another: str = ""
    plural: bool = False

    def __post_init__(self):
        if not self.another:
            base = self.noun.split(" ", 1)[1] if self.noun.split(" ", 1)[0] in ("a", "an") else self.noun
            object.__setattr__(self, "another", f"another {base}")


def _p(started, noun, the, stopped=None, another="", plural=False) -> ClassPhrases:
    return ClassPhrases(started, noun, the, stopped or f"{the} stopped", another, plural)


#: Every class of agent.core.labels.LABELS (a test checks none is missing).
CLASS_PHRASES: dict[str, ClassPhrases] = {
    "speech": _p("someone started talking", "a voice", "the voice", "the talking stopped"),
    "music": _p("music started playing", "some music", "the music", another="more music"),
    "bird": _p("a bird started singing", "a bird", "the bird"),
    "dog": _p("a dog started barking", "a dog", "the dog"),
    "siren": _p("a siren started", "a siren", "the siren"),
    "car_horn": _p("a car horn started honking", "a car horn", "the car horn"),
    "alarm": _p("an alarm went off", "an alarm", "the alarm"),
    "telephone": _p("a phone started ringing", "a phone", "the phone", "the phone stopped ringing"),
    "doorbell": _p("a doorbell rang", "a doorbell", "the doorbell"),
    "knocking": _p("someone started knocking", "knocking", "the knocking", another="more knocking"),
    "footsteps": _p("someone started walking", "footsteps", "the footsteps", another="more footsteps",
                    plural=True),
    "clapping": _p("someone started clapping", "clapping", "the clapping", another="more clapping"),
    "engine": _p("an engine started", "an engine", "the engine"),
    "water": _p("water started running", "running water", "the running water", "the water stopped running",
                another="more running water"),
    "fan": _p("a fan started", "a fan", "the fan"),
    "glass_breaking": _p("glass broke", "breaking glass", "the breaking glass", another="more breaking glass"),
    "keyboard": _p("someone started typing", "typing", "the typing", another="more typing"),
}
assert set(CLASS_PHRASES) == set(LABELS), "every label needs its phrases"


def phrases_of(label: str) -> ClassPhrases:
    """The phrases of a class; a class outside the vocabulary (another model's) by its name."""
    if label in CLASS_PHRASES:
        return CLASS_PHRASES[label]
    name = label.replace("_", " ")
    art = "an" if name[:1].lower() in "aeiou" else "a"
    return _p(f"{art} {name} started", f"{art} {name}", f"the {name}")


#: words style, per geometry sector: (where it is, where it went).
_SECTOR_WORDS: dict[str, tuple[str, str]] = {
    "front": ("ahead of you", "in front of you"),
    "front-left": ("ahead and to your left", "ahead and to your left"),
    "left": ("on your left", "to your left"),
    "back-left": ("behind and to your left", "behind and to your left"),
    "back": ("behind you", "behind you"),
    "back-right": ("behind and to your right", "behind and to your right"),
    "right": ("on your right", "to your right"),
    "front-right": ("ahead and to your right", "ahead and to your right"),
}


def clock_hour(azimuth_deg: float) -> int:
    """The clock hour of an azimuth, 1..12: 12 ahead, 9 left (+90), 3 right (-90), 6 behind;
    nearest hour (30 deg each), halves rounded up on the dial's own turn."""
    return int(math.floor(-azimuth_deg / 30.0 + 0.5)) % 12 or 12


def _round_half_up(x: float, step: float) -> float:
    return step * math.floor(x / step + 0.5)


def distance_phrase(distance_m: float | None) -> str:
    """ "about 2 m away": 0.5 m steps under 2 m (never under 0.5 m), whole metres from 2 m;
    empty when the distance is unknown."""
    if distance_m is None or not math.isfinite(distance_m) or distance_m <= 0:
        return ""
    d = max(0.5, _round_half_up(distance_m, 0.5)) if distance_m < 2.0 else _round_half_up(distance_m, 1.0)
    text = f"{d:.0f}" if d == int(d) else f"{d:.1f}"
    return f"about {text} m away"


@dataclass(frozen=True)
class Wording:
    """How directions are said. clearly_above_deg: from this elevation "above you" is added
    (35 deg: the benchmark's "far above", agent.core.geometry.elevation_name; below that the
    encoder's elevation is too unsure to mention); overhead_deg: from here the azimuth is
    dropped ("above you" alone); the same below, mirrored."""

    style: str = "words"
    degrees_step_deg: float = 5.0
    clearly_above_deg: float = 35.0
    overhead_deg: float = 65.0

    def _horizontal(self, az: float, destination: bool) -> str | None:
        if self.style == "words":
            return _SECTOR_WORDS[sector_of(az)][int(destination)]
        if self.style == "clock":
            return f"{'to' if destination else 'at'} {clock_hour(az)} o'clock"
        if destination:
            return None  # "has moved 90 degrees to your left" would read as a turn by 90 deg
        r = _round_half_up(abs(az), self.degrees_step_deg)
        if r <= 0:
            return "straight ahead"
        if r >= 180:
            return "behind you"
        n = f"{r:.0f}" if r == int(r) else f"{r:g}"
        return f"{n} degree{'' if n == '1' else 's'} to your {'left' if az > 0 else 'right'}"

    def _vertical(self, el: float) -> str:
        if el >= self.overhead_deg:
            return "overhead"
        if el >= self.clearly_above_deg:
            return "above"
        if el <= -self.overhead_deg:
            return "underfoot"
        if el <= -self.clearly_above_deg:
            return "below"
        return ""

    def _phrase(self, az: float, el: float, destination: bool) -> str | None:
        v = self._vertical(el)
        if v in ("overhead", "underfoot"):
            return "above you" if v == "overhead" else "below you"
        h = self._horizontal(az, destination)
        if h is None or not v:
            return h
        return f"{h}, {v} you"

    def at(self, azimuth_deg: float, elevation_deg: float = 0.0) -> str:
        """Where a thing is: "on your left", "at 9 o'clock", "90 degrees to your left"."""
        return self._phrase(azimuth_deg, elevation_deg, destination=False)

    def to(self, azimuth_deg: float, elevation_deg: float = 0.0) -> str | None:
        """Where a thing went ("to your left", "to 9 o'clock"); None where the style has no
        such form (degrees): the sentence then says "and is now <at>"."""
        return self._phrase(azimuth_deg, elevation_deg, destination=True)

    def region(self, azimuth_deg: float, elevation_deg: float = 0.0) -> tuple:
        """The cell a direction falls in for this style (a clock hour, or a 45 deg sector,
        plus the vertical band): narration speaks of a move only when this changes."""
        v = self._vertical(elevation_deg)
        if v in ("overhead", "underfoot"):
            return (v,)
        h = clock_hour(azimuth_deg) if self.style == "clock" else sector_of(azimuth_deg)
        return (h, v)


def join_and(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def sentence(clause: str) -> str:
    """A clause as a sentence: capital first letter, full stop."""
    clause = clause.strip()
    return clause[:1].upper() + clause[1:] + ("" if clause.endswith((".", "!", "?")) else ".")
