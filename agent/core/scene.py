"""Scene types: what a dataset line describes (dataset contract in ARCHITECTURE.md)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.core.audio import MIN_SAMPLE_RATE_HZ
from agent.core.geometry import wrap_azimuth_deg
from agent.core.rotation import HEAD_ORIENTATION_KEY, head_path_from_json

SCENE_KEYS = ("id", "audio", "sample_rate_hz", "duration_s", "sources", "room", "hrtf")
SOURCE_KEYS = ("label", "azimuth_deg", "elevation_deg", "distance_m", "onset_s", "offset_s")
QA_KEYS = ("id", "scene_id", "level", "task", "question", "options", "answer")
QA_LEVELS = ("L1", "L2", "L3")
#: The option letters of a multiple-choice item, in option order (QA contract: 4 options,
#: answer "A".."D"). The checker, the generator, the scorer and the baselines all use these.
OPTION_LETTERS = "ABCD"
MIN_OPTIONS = 2
#: The form every scene's "audio" must take (dataset contract).
AUDIO_PATH_FORM = "a relative path inside the dataset folder, e.g. audio/s000001.wav"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def option_letter(index: int) -> str:
    """The letter of option `index` (0 -> "A")."""
    if not 0 <= index < len(OPTION_LETTERS):
        raise ValueError(f"option index {index} is out of range; a question has at most "
                         f"{len(OPTION_LETTERS)} options ({OPTION_LETTERS})")
    return OPTION_LETTERS[int(index)]


def option_index(letter: str) -> int:
    """The index of an option letter ("A" -> 0). Only exactly one capital letter is one."""
    if not isinstance(letter, str) or len(letter) != 1 or letter not in OPTION_LETTERS:
        raise ValueError(f"not an option letter: {letter!r}; expected one of {list(OPTION_LETTERS)}")
    return OPTION_LETTERS.index(letter)


def audio_path_problem(audio: Any) -> str | None:
    """Why `audio` is not a path inside the dataset folder, or None when its form is fine.

    Only the form is checked here (no file system access): absolute, drive-letter and
    backslash paths and any ".." component are refused. Symlinks that lead outside are
    caught where the path is resolved (agent.core.dataset).
    """
    if not isinstance(audio, str) or not audio:
        return f"'audio' must be {AUDIO_PATH_FORM}, got {audio!r}"
    if audio.startswith("/") or _WINDOWS_DRIVE.match(audio) or "\\" in audio or "\0" in audio:
        return f"'audio' must be {AUDIO_PATH_FORM}, got {audio!r}"
    if ".." in audio.split("/"):
        return f"'audio' must be {AUDIO_PATH_FORM} (no '..' component), got {audio!r}"
    return None


@dataclass
class SourceLabel:
    """One sound source of a scene: its class, direct-path direction and distance, time span."""

    label: str
    azimuth_deg: float
    elevation_deg: float
    distance_m: float | None
    onset_s: float
    offset_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in SOURCE_KEYS}
        d.update(self.extra)
        return d


@dataclass
class SourceEstimate:
    """What a localizer predicts for one source. Any field but direction may be None."""

    azimuth_deg: float
    elevation_deg: float = 0.0
    distance_m: float | None = None
    label: str | None = None
    confidence: float = 1.0


@dataclass
class Scene:
    id: str
    audio: str
    sample_rate_hz: int
    duration_s: float
    sources: list[SourceLabel]
    room: dict[str, Any] | None
    hrtf: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "audio": self.audio,
            "sample_rate_hz": self.sample_rate_hz,
            "duration_s": self.duration_s,
            "sources": [s.to_json() for s in self.sources],
            "room": self.room,
            "hrtf": self.hrtf,
        }
        d.update(self.extra)
        return d

    @property
    def room_kind(self) -> str:
        return "anechoic" if self.room is None else "reverberant"


def _num(obj: dict, key: str, problems: list[str], where: str, *, lo=None, hi=None,
         allow_none=False) -> Any:
    v = obj.get(key)
    if v is None:
        if allow_none:
            return None
        problems.append(f"{where}'{key}' must be a number, got null")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        problems.append(f"{where}'{key}' must be a finite number, got {v!r}")
        return None
    if lo is not None and v < lo:
        problems.append(f"{where}'{key}' must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        problems.append(f"{where}'{key}' must be <= {hi}, got {v}")
    return v


def scene_from_json(obj: Any) -> tuple[Scene | None, list[str]]:
    """Parse and validate one scenes.jsonl object. Returns (scene, problems)."""
    problems: list[str] = []
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {type(obj).__name__}"]
    missing = [k for k in SCENE_KEYS if k not in obj]
    if missing:
        return None, [f"missing required key(s) {missing}; required: {list(SCENE_KEYS)}"]
    if not isinstance(obj["id"], str) or not obj["id"]:
        problems.append("'id' must be a non-empty string")
    audio_problem = audio_path_problem(obj["audio"])
    if audio_problem:
        problems.append(audio_problem)
    rate = obj["sample_rate_hz"]
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < MIN_SAMPLE_RATE_HZ:
        problems.append(f"'sample_rate_hz' must be an integer >= {MIN_SAMPLE_RATE_HZ}, got {rate!r}")
    duration = _num(obj, "duration_s", problems, "", lo=0.0)
    if not isinstance(obj["hrtf"], str):
        problems.append("'hrtf' must be a string naming the head/HRTF")
    room = obj["room"]
    if room is not None and not isinstance(room, dict):
        problems.append(f"'room' must be an object or null, got {room!r}")
    sources: list[SourceLabel] = []
    if not isinstance(obj["sources"], list):
        problems.append("'sources' must be a list")
    else:
        for i, s in enumerate(obj["sources"]):
            w = f"sources[{i}]."
            if not isinstance(s, dict):
                problems.append(f"{w[:-1]} must be an object")
                continue
            miss = [k for k in SOURCE_KEYS if k not in s]
            if miss:
                problems.append(f"{w[:-1]} missing key(s) {miss}; required: {list(SOURCE_KEYS)}")
                continue
            if not isinstance(s["label"], str) or not s["label"]:
                problems.append(f"{w}label must be a non-empty string")
            az = _num(s, "azimuth_deg", problems, w, lo=-360.0, hi=360.0)
            el = _num(s, "elevation_deg", problems, w, lo=-90.0, hi=90.0)
            dist = _num(s, "distance_m", problems, w, lo=0.0, allow_none=True)
            on = _num(s, "onset_s", problems, w, lo=0.0)
            off = _num(s, "offset_s", problems, w, lo=0.0)
            if on is not None and off is not None and off < on:
                problems.append(f"{w}offset_s ({off}) is before onset_s ({on})")
            if duration is not None and on is not None and on > duration:
                problems.append(f"{w}onset_s ({on}) is after the clip ends ({duration} s)")
            extra = {k: v for k, v in s.items() if k not in SOURCE_KEYS}
            if not problems:
                sources.append(SourceLabel(s["label"], float(wrap_azimuth_deg(az)), float(el),
                                           None if dist is None else float(dist),
                                           float(on), float(off), extra))
    if obj.get(HEAD_ORIENTATION_KEY) is not None:  # optional; kept in extra (agent.core.rotation)
        problems += head_path_from_json(obj[HEAD_ORIENTATION_KEY])[1]
    if problems:
        return None, problems
    extra = {k: v for k, v in obj.items() if k not in SCENE_KEYS}
    return Scene(obj["id"], obj["audio"], int(rate), float(duration), sources, room,
                 obj["hrtf"], extra), []


@dataclass
class QAItem:
    id: str
    scene_id: str
    level: str
    task: str
    question: str
    options: list[str] | None
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d.update(self.extra)
        return d


def qa_from_json(obj: Any) -> tuple[QAItem | None, list[str]]:
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {type(obj).__name__}"]
    missing = [k for k in QA_KEYS if k not in obj]
    if missing:
        return None, [f"missing required key(s) {missing}; required: {list(QA_KEYS)}"]
    problems = []
    if obj["level"] not in QA_LEVELS:
        problems.append(f"'level' must be one of {QA_LEVELS}, got {obj['level']!r}")
    for k in ("id", "scene_id", "task", "question", "answer"):
        if not isinstance(obj[k], str) or not obj[k]:
            problems.append(f"'{k}' must be a non-empty string")
    opts = obj["options"]
    n_max = len(OPTION_LETTERS)
    if opts is not None:
        if not (isinstance(opts, list) and MIN_OPTIONS <= len(opts) <= n_max
                and all(isinstance(o, str) and o.strip() for o in opts)):
            problems.append(f"'options' must be null or a list of {MIN_OPTIONS} to {n_max} "
                            f"non-empty strings, got {opts!r}")
        elif len(set(opts)) != len(opts):
            problems.append(f"'options' must be distinct, got {opts!r}")
        elif isinstance(obj["answer"], str) and obj["answer"] not in set(OPTION_LETTERS[: len(opts)]):
            problems.append(f"'answer' must be exactly one option letter of "
                            f"{list(OPTION_LETTERS[: len(opts)])} for {len(opts)} options, "
                            f"got {obj['answer']!r}")
    if problems:
        return None, problems
    extra = {k: v for k, v in obj.items() if k not in QA_KEYS}
    return QAItem(obj["id"], obj["scene_id"], obj["level"], obj["task"], obj["question"],
                  opts, obj["answer"], extra), []
