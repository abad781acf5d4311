"""The label vocabulary: the sound classes binaura synthesizes, detects and names."""

from __future__ import annotations

#: Class names (order is the model's output order; never reorder, only append).
LABELS: tuple[str, ...] = (
    "speech",
    "music",
    "bird",
    "dog",
    "siren",
    "car_horn",
    "alarm",
    "telephone",
    "doorbell",
    "knocking",
    "footsteps",
    "clapping",
    "engine",
    "water",
    "fan",
    "glass_breaking",
    "keyboard",
)
LABEL_TO_INDEX = {name: i for i, name in enumerate(LABELS)}

#: Human phrases used in questions and narration.
DISPLAY: dict[str, str] = {
    "speech": "the voice",
    "music": "the music",
    "bird": "the bird",
    "dog": "the dog",
    "siren": "the siren",
    "car_horn": "the car horn",
    "alarm": "the alarm",
    "telephone": "the phone",
    "doorbell": "the doorbell",
    "knocking": "the knocking",
    "footsteps": "the footsteps",
    "clapping": "the clapping",
    "engine": "the engine",
    "water": "the running water",
    "fan": "the fan",
    "glass_breaking": "the breaking glass",
    "keyboard": "the typing",
}

#: How urgently a listener should attend to each class (higher first); used by
#: the L3 "which sound needs attention first" task. Ties break on distance.
URGENCY: dict[str, int] = {
    "siren": 5, "glass_breaking": 5, "car_horn": 4, "alarm": 4,
    "engine": 3, "telephone": 2, "doorbell": 2, "knocking": 2, "dog": 2,
    "speech": 1, "footsteps": 1, "water": 1,
    "music": 0, "bird": 0, "clapping": 0, "fan": 0, "keyboard": 0,
}

assert set(DISPLAY) == set(LABELS) == set(URGENCY)


def display(label: str) -> str:
    return DISPLAY.get(label, f"the {label.replace('_', ' ')}")


def check_label(label: str) -> str:
    if label not in LABEL_TO_INDEX:
        raise ValueError(f"unknown class {label!r}; expected one of: {', '.join(LABELS)}")
    return label
