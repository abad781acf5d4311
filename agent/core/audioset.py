"""AudioSet's 521 classes (YAMNet's outputs) and an explicit table from them to binaura's labels.

The table lets YAMNet serve as a zero-shot classifier or a teacher over LABELS:
a label's score is the largest score among the AudioSet classes listed for it
(a max, not a sum: the AudioSet ontology nests classes, "Dog" > "Bark", and a
nested pair fires together). Classes are named by their display names in
yamnet_class_map.csv; `AudiosetMap` resolves them to indices and refuses any
name the class map does not hold.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.yamnet_features import N_AUDIOSET_CLASSES

#: binaura label -> the AudioSet display names that count as it.
AUDIOSET_TO_LABEL: dict[str, tuple[str, ...]] = {
    "speech": ("Speech", "Child speech, kid speaking", "Conversation", "Narration, monologue", "Babbling",
               "Speech synthesizer", "Whispering"),
    "music": ("Music", "Musical instrument", "Plucked string instrument", "Guitar", "Electric guitar",
              "Acoustic guitar", "Keyboard (musical)", "Piano", "Electric piano", "Organ", "Synthesizer",
              "Percussion", "Drum kit", "Drum", "Orchestra", "Brass instrument", "Trumpet",
              "Bowed string instrument", "String section", "Violin, fiddle", "Cello",
              "Wind instrument, woodwind instrument", "Flute", "Saxophone", "Clarinet", "Harp",
              "Harmonica", "Accordion", "Singing", "Choir", "Pop music", "Rock music", "Jazz",
              "Classical music", "Electronic music", "Song", "Background music", "Video game music"),
    "bird": ("Bird", "Bird vocalization, bird call, bird song", "Chirp, tweet", "Squawk", "Pigeon, dove", "Coo",
             "Crow", "Caw", "Owl", "Hoot", "Fowl", "Chicken, rooster", "Cluck", "Crowing, cock-a-doodle-doo",
             "Duck", "Quack", "Goose"),
    "dog": ("Dog", "Bark", "Yip", "Howl", "Bow-wow", "Growling", "Whimper (dog)", "Canidae, dogs, wolves"),
    "siren": ("Siren", "Civil defense siren", "Emergency vehicle", "Police car (siren)", "Ambulance (siren)",
              "Fire engine, fire truck (siren)"),
    "car_horn": ("Vehicle horn, car horn, honking", "Toot", "Air horn, truck horn"),
    "alarm": ("Alarm", "Alarm clock", "Smoke detector, smoke alarm", "Fire alarm", "Car alarm", "Buzzer",
              "Beep, bleep"),
    "telephone": ("Telephone", "Telephone bell ringing", "Ringtone"),
    "doorbell": ("Doorbell", "Ding-dong"),
    "knocking": ("Knock", "Tap"),
    "footsteps": ("Walk, footsteps", "Run", "Shuffle"),
    "clapping": ("Clapping", "Applause", "Hands"),
    "engine": ("Engine", "Light engine (high frequency)", "Medium engine (mid frequency)",
               "Heavy engine (low frequency)", "Engine knocking", "Engine starting", "Idling",
               "Accelerating, revving, vroom", "Vehicle", "Motor vehicle (road)", "Car", "Car passing by", "Truck",
               "Bus", "Motorcycle", "Aircraft engine"),
    "water": ("Water", "Stream", "Waterfall", "Water tap, faucet", "Sink (filling or washing)",
              "Bathtub (filling or washing)", "Toilet flush", "Liquid", "Pour", "Trickle, dribble", "Gush",
              "Splash, splatter", "Rain", "Rain on surface"),
    # Wind counts as fan: the sound kit files its wind recordings under fan (issue 22, thin classes).
    "fan": ("Mechanical fan", "Air conditioning", "Whir", "Wind"),
    "glass_breaking": ("Glass", "Shatter", "Breaking", "Chink, clink", "Smash, crash"),
    "keyboard": ("Computer keyboard", "Typing", "Typewriter"),
}

assert tuple(AUDIOSET_TO_LABEL) == LABELS


def read_class_map(path: str | os.PathLike) -> tuple[str, ...]:
    """yamnet_class_map.csv (index, mid, display_name) -> the 521 display names in index order."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise BinauraError(f"{path}: cannot read the AudioSet class map ({e})") from e
    if not rows or rows[0] != ["index", "mid", "display_name"]:
        raise BinauraError(f"{path}: expected a header 'index,mid,display_name'")
    body = rows[1:]
    if len(body) != N_AUDIOSET_CLASSES or any(len(r) != 3 or r[0] != str(i) for i, r in enumerate(body)):
        raise BinauraError(f"{path}: expected {N_AUDIOSET_CLASSES} rows indexed 0..{N_AUDIOSET_CLASSES - 1}")
    return tuple(r[2] for r in body)


@dataclass(frozen=True)
class AudiosetMap:
    """AudioSet scores (..., 521) -> binaura label scores (..., len(labels))."""

    class_names: tuple[str, ...]
    labels: tuple[str, ...]
    indices: tuple[tuple[int, ...], ...]  # per label, the AudioSet indices that count as it

    @classmethod
    def build(cls, class_names: tuple[str, ...], table: dict[str, tuple[str, ...]] | None = None) -> AudiosetMap:
        table = AUDIOSET_TO_LABEL if table is None else table
        where = {n: i for i, n in enumerate(class_names)}
        unknown = sorted({n for names in table.values() for n in names if n not in where})
        if unknown:
            raise BinauraError(f"AudioSet names not in the class map: {unknown}")
        return cls(tuple(class_names), tuple(table), tuple(tuple(where[n] for n in table[k]) for k in table))

    def label_scores(self, scores: np.ndarray) -> np.ndarray:
        """(..., 521) AudioSet scores in [0, 1] -> (..., L) the largest among each label's classes."""
        s = np.asarray(scores, dtype=np.float32)
        if s.shape[-1] != len(self.class_names):
            raise BinauraError(f"expected {len(self.class_names)} AudioSet scores on the last axis, got shape {s.shape}")
        return np.stack([s[..., list(ix)].max(axis=-1) for ix in self.indices], axis=-1)

    def top_classes(self, scores: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """(521,) scores -> the k highest AudioSet classes with their scores, highest first."""
        s = np.asarray(scores, dtype=np.float32).reshape(-1)
        order = np.argsort(-s)[:k]
        return [(self.class_names[i], float(s[i])) for i in order]
