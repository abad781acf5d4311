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

#: What people call each class in everyday speech, beside DISPLAY: noun phrases that fit
#: "Where is ...?" and "Can you hear ...?" (issue 20: people do not speak in templates).
#: Order matters to the QA benchmark: the LAST name of each class is held out of training
#: (training/qa/phrasing.py), so append new names before it, never after.
EVERYDAY_NAMES: dict[str, tuple[str, ...]] = {
    "speech": ("someone talking", "the person talking", "the speaking voice", "a person speaking"),
    "music": ("the song", "the music playing", "some music", "a tune"),
    "bird": ("a bird singing", "the birdsong", "the chirping", "the tweeting"),
    "dog": ("a dog barking", "the barking", "that dog", "the barking dog"),
    "siren": ("the ambulance", "the police siren", "the wailing", "an emergency siren"),
    "car_horn": ("the horn", "a honk", "the honking", "a car honking"),
    "alarm": ("the alarm clock", "the beeping", "an alarm going off", "the smoke alarm"),
    "telephone": ("a phone ringing", "the ringtone", "the ringing phone", "the mobile phone"),
    "doorbell": ("the bell at the door", "someone ringing the doorbell", "the door chime", "the ding-dong"),
    "knocking": ("someone knocking", "the knock", "a knock at the door", "the rapping"),
    "footsteps": ("someone walking", "the steps", "the person walking", "the walking"),
    "clapping": ("the applause", "people clapping", "someone clapping", "the claps"),
    "engine": ("the motor", "a car engine", "the engine running", "the rumbling motor"),
    "water": ("the tap running", "the water", "the splashing", "the faucet"),
    "fan": ("the whirring", "the fan running", "the humming fan", "the ventilation"),
    "glass_breaking": ("the glass shattering", "the smash", "something breaking", "a window breaking"),
    "keyboard": ("someone typing", "the keyboard", "the clacking", "the keys clicking"),
}

#: Names that take a plural verb ("Where are the footsteps?").
PLURAL_NAMES = frozenset({"the footsteps", "the steps", "people clapping", "the claps", "the keys clicking"})

#: How to say that a class is not heard: "I don't hear {INDEFINITE[label]}".
INDEFINITE: dict[str, str] = {
    "speech": "anyone talking", "music": "any music", "bird": "a bird", "dog": "a dog",
    "siren": "a siren", "car_horn": "a car horn", "alarm": "an alarm", "telephone": "a phone",
    "doorbell": "a doorbell", "knocking": "any knocking", "footsteps": "any footsteps",
    "clapping": "any clapping", "engine": "an engine", "water": "any running water", "fan": "a fan",
    "glass_breaking": "any breaking glass", "keyboard": "any typing",
}

assert set(DISPLAY) == set(LABELS) == set(URGENCY) == set(EVERYDAY_NAMES) == set(INDEFINITE)

_DETERMINERS = ("the ", "a ", "an ", "that ", "this ", "some ")


def display(label: str) -> str:
    return DISPLAY.get(label, f"the {label.replace('_', ' ')}")


def names_of(label: str) -> tuple[str, ...]:
    """Every name of a class: its DISPLAY phrase first, then its everyday names."""
    return (display(label),) + EVERYDAY_NAMES.get(label, ())


def name_key(text: str) -> str:
    """A name reduced for lookup: lower case, letters and digits, no leading determiner."""
    key = " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())
    for det in _DETERMINERS:
        if key.startswith(det) and len(key) > len(det):
            return key[len(det):]
    return key


#: Every name (and the class name itself) -> its class, keyed by name_key.
_NAME_TO_LABEL: dict[str, str] = {}
for _label in LABELS:
    for _name in (_label.replace("_", " "),) + names_of(_label):
        assert _NAME_TO_LABEL.setdefault(name_key(_name), _label) == _label, f"{_name!r} names two classes"


def label_of_name(text: str) -> str | None:
    """The class a name stands for ("a honk" -> "car_horn", "the voice" -> "speech"), or None."""
    return _NAME_TO_LABEL.get(name_key(text))


def labels_in_text(text: str) -> list[str]:
    """Classes named in free text (a question), in order of appearance; longer names win
    ("the barking dog" is one mention of dog, not "barking" and "dog")."""
    words = name_key(text).split()
    found, i = [], 0
    longest = max(len(k.split()) for k in _NAME_TO_LABEL)
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            label = _NAME_TO_LABEL.get(" ".join(words[i:i + n]))
            if label is not None:
                if label not in found:
                    found.append(label)
                i += n
                break
        else:
            i += 1
    return found


def is_plural(name: str) -> bool:
    return name in PLURAL_NAMES


def not_heard(label: str) -> str:
    """The answer to a question about a class that is not in the scene: "I don't hear a dog"."""
    return f"I don't hear {INDEFINITE.get(label, 'a ' + label.replace('_', ' '))}"


def check_label(label: str) -> str:
    if label not in LABEL_TO_INDEX:
        raise ValueError(f"unknown class {label!r}; expected one of: {', '.join(LABELS)}")
    return label
