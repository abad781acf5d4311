"""Answers from the live source tracks, without a language model: the agent's answerer when
no audio-language model is loaded, and the baseline one is judged against.

It recognises the sounds a question names (every class's display and everyday names, and
single keywords such as "dog", "siren", "voice") and a handful of intents: where, how far,
which is closer / farther, how many, what do you hear, and "if I turn left / right / around
/ by N degrees, where will X be", and "what is the person on my left saying?" (the speech
track's span transcribed, steered toward it: agent.voice). What it cannot parse gets the scene's description and
says so. Every answer is built from the tracks' numbers; a sound it has no track for gets
"I don't hear a dog": it never invents a direction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from agent.core.geometry import rotate_listener_deg, sector_of
from agent.core.labels import DISPLAY, EVERYDAY_NAMES, INDEFINITE, LABELS, display

#: single words that name a class in a question (beside its display and everyday names)
KEYWORDS: dict[str, tuple[str, ...]] = {
    "speech": ("voice", "talking", "speaking", "speaker", "person", "someone", "man", "woman", "people talking"),
    "music": ("music", "song", "tune", "melody"), "bird": ("bird", "birds", "chirp", "tweet"),
    "dog": ("dog", "bark", "barking", "puppy"), "siren": ("siren", "ambulance", "police"),
    "car_horn": ("horn", "honk"), "alarm": ("alarm", "beep"), "telephone": ("phone", "telephone", "ringtone"),
    "doorbell": ("doorbell", "door bell", "chime"), "knocking": ("knock", "knocking"),
    "footsteps": ("footsteps", "steps", "walking"), "clapping": ("clap", "clapping", "applause"),
    "engine": ("engine", "motor", "car"), "water": ("water", "tap", "faucet"), "fan": ("fan", "whirring"),
    "glass_breaking": ("glass", "smash", "shatter"), "keyboard": ("keyboard", "typing", "keys"),
}


def _phrases() -> list[tuple[str, str]]:
    out = []
    for label in LABELS:
        names = {DISPLAY[label], *EVERYDAY_NAMES[label], *KEYWORDS.get(label, ())}
        for n in names:
            n = re.sub(r"^(the|a|an|that|some) ", "", n.lower())
            out.append((n, label))
    return sorted(out, key=lambda p: -len(p[0]))  # longest first: "car horn" before "car"


_PHRASES = _phrases()


def mentioned(question: str) -> list[str]:
    """The classes a question names, in the order it names them."""
    q = " " + re.sub(r"[^a-z0-9 -]", " ", question.lower()) + " "
    found: list[tuple[int, str]] = []
    for phrase, label in _PHRASES:
        for m in re.finditer(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", q):
            if label not in (lab for _, lab in found):
                found.append((m.start(), label))
            q = q[:m.start()] + " " * len(phrase) + q[m.end():]  # a longer phrase claims its words
    return [label for _, label in sorted(found)]


def where_words(azimuth_deg: float) -> str:
    sector = sector_of(azimuth_deg)
    return {"front": "in front of you", "back": "behind you"}.get(sector, f"to your {sector}")


def _where(t, azimuth_deg: float | None = None) -> str:
    az = t.azimuth_deg if azimuth_deg is None else azimuth_deg
    s = f"{where_words(az)} ({az:+.0f} degrees"
    return s + (")" if t.distance_m is None else f", about {t.distance_m:.1f} metres away)")


_SAYING = re.compile(r"\b(saying|said|say|says|talking about|words)\b")


def _side(question: str) -> float | None:
    """The direction a question points at ("on my left"), as an azimuth, or None."""
    q = question.lower()
    for pattern, az in ((r"\bleft\b", 90.0), (r"\bright\b", -90.0), (r"\bbehind\b|\bback\b", 180.0),
                        (r"\bfront\b|\bahead\b", 0.0)):
        if re.search(pattern, q):
            return az
    return None


def _turn(question: str) -> float | None:
    """The listener's turn a question supposes, in degrees (+ = to the left), or None."""
    q = question.lower()
    if not re.search(r"\bturn|\bface|\brotate", q):
        return None
    if "around" in q or "back" in q:
        return 180.0
    m = re.search(r"(\d+)\s*(?:deg|°)", q)
    amount = float(m.group(1)) if m else 90.0
    if re.search(r"\bright\b", q):
        return -amount
    if re.search(r"\bleft\b", q):
        return amount
    return None


class TrackAnswerer:
    """callable(question, pipeline) -> answer chunks (agent.run.Runner's answerer)."""

    name = "tracks"

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s  # sounds heard within this many seconds count as "there"

    def __call__(self, question: str, pipeline) -> Iterator[str]:
        tracks = pipeline.heard_tracks(self.window_s)
        if _SAYING.search(question.lower()):
            text = self.what_was_said(question, tracks, pipeline)
        else:
            text = self.answer(question, tracks)
        yield from re.findall(r"\S+\s*", text)  # streamed word by word, like a model's tokens

    def what_was_said(self, question: str, tracks, pipeline) -> str:
        """The words of the speech track the question points at (by side when several talk)."""
        talkers = [t for t in tracks if t.label == "speech"]
        if not talkers:
            return "I don't hear anyone talking."
        side = _side(question)
        if side is not None:
            talkers.sort(key=lambda t: abs(float(rotate_listener_deg(t.azimuth_deg, side))))
        t = talkers[0]
        from agent.voice.spoken import transcribe_span  # noqa: PLC0415 - loads the speech models

        audio = pipeline.recent_audio(pipeline.cfg.keep_s)
        t_now = pipeline.stream_t
        t0_audio = t_now - audio.shape[-1] / pipeline.rate_hz
        t_end = min(t_now, t.t_last_hit + 0.1)
        return transcribe_span(audio, pipeline.rate_hz, max(t.t_start, t0_audio), t_end, t.azimuth_deg,
                               elevation_deg=t.elevation_deg, audio_t0_s=t0_audio).answer()

    def answer(self, question: str, tracks) -> str:
        q = question.lower()
        labels = mentioned(question)
        by_label = {}
        for t in sorted(tracks, key=lambda t: -t.confidence):
            by_label.setdefault(t.label, t)
        if not tracks and not labels:
            return "I don't hear any distinct sound right now."
        missing = [lab for lab in labels if lab not in by_label]
        heard = [by_label[lab] for lab in labels if lab in by_label]
        if re.search(r"how many", q):
            return f"I hear {len(tracks)} sound{'s' if len(tracks) != 1 else ''}."
        if len(labels) >= 2 and re.search(r"clos|near|far|distant", q):
            if missing:
                return f"I don't hear {INDEFINITE[missing[0]]}."
            known = [t for t in heard if t.distance_m is not None]
            if len(known) < 2:
                return "I can't tell their distances apart."
            key = (lambda t: t.distance_m) if re.search(r"clos|near", q) else (lambda t: -t.distance_m)
            best = min(known, key=key)
            word = "closer" if re.search(r"clos|near", q) else "farther away"
            return f"{display(best.label).capitalize()} is {word}, about {best.distance_m:.1f} metres away."
        if labels:
            if missing and not heard:
                return f"I don't hear {INDEFINITE[missing[0]]}."
            t = heard[0]
            turn = _turn(q)
            if turn is not None:
                az = float(rotate_listener_deg(t.azimuth_deg, turn))
                return f"After that turn, {display(t.label)} will be {_where(t, az)}."
            if re.search(r"how far|distance|metres|meters", q):
                if t.distance_m is None:
                    return f"{display(t.label).capitalize()} is {where_words(t.azimuth_deg)}; I can't tell how far."
                return f"{display(t.label).capitalize()} is about {t.distance_m:.1f} metres away."
            return f"{display(t.label).capitalize()} is {_where(t)}."
        parts = [f"{display(t.label)} {_where(t)}" for t in sorted(tracks, key=lambda t: t.t_start)]
        return "I hear " + "; ".join(parts) + "."
