"""More names for the sounds in training questions (issue 20: people do not speak in templates).

The QA generator names each class by four everyday names. A model trained on those alone
learns a lookup table: asked about "the ding-dong" it writes `a=ding_dong`, or a class it
knows. Here a training question is also asked with its class names replaced by names from
AudioSet's ontology (agent.core.audioset: the 521 classes YAMNet knows, each mapped to a
binaura label), so the mapping from a name to a class is learned from many more names.

No name that shares a word stem with a held-out name (training/qa/phrasing.name_pools) is
used, so the benchmark's held-out names stay unseen in training: "Chirp, tweet" gives no
"tweet" (held out: "the tweeting"), "Smoke detector, smoke alarm" gives nothing.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from agent.core.audioset import AUDIOSET_TO_LABEL
from agent.core.labels import LABELS
from agent.core.scene import QAItem
from agent.qa.sentences import capitalise
from training.qa.phrasing import name_pools

#: Words that name nothing by themselves.
_STOP = {"the", "a", "an", "that", "some", "at", "of", "on", "in", "and", "or", "to"}
#: Two words share a stem when one is a prefix of the other, or their first STEM letters agree.
STEM = 5


def name_words(name: str) -> list[str]:
    """The content words of a class name, lower case (articles and the like dropped)."""
    return [w for w in re.findall(r"[a-z]+", name.lower()) if w not in _STOP]


def same_stem(a: str, b: str) -> bool:
    """Two words count as one when either starts the other or they share the first STEM letters."""
    return a.startswith(b) or b.startswith(a) or (len(a) >= STEM and len(b) >= STEM and a[:STEM] == b[:STEM])


def heldout_words() -> set[str]:
    """Every content word of every held-out class name."""
    return {w for label in LABELS for name in name_pools(label)[1] for w in name_words(name)}


def near_heldout(name: str, held: set[str] | None = None) -> bool:
    """The name holds a word that shares a stem with a word of a held-out name (so training
    may not use it); held: heldout_words(), when computed already."""
    held = heldout_words() if held is None else held
    return any(same_stem(w, h) for w in name_words(name) for h in held)


def extra_names() -> dict[str, tuple[str, ...]]:
    """label -> names from AudioSet's class names that are neither a seen nor near a held-out
    name ("Bird vocalization, bird call, bird song" -> "the bird vocalization", "the bird call", ...)."""
    held = heldout_words()
    seen = {label: {n.lower() for n in name_pools(label)[0]} for label in LABELS}
    cands: dict[str, list[str]] = {}
    for label, classes in AUDIOSET_TO_LABEL.items():
        names = cands.setdefault(label, [])
        for cls in classes:
            for part in cls.split(","):
                phrase = re.sub(r"\(.*?\)", "", part).strip().lower()
                name = f"the {phrase}"
                if not phrase or name in names or near_heldout(phrase, held):
                    continue
                names.append(name)
    # a word that names two classes ("keyboard": music's "Keyboard (musical)"; "tap": knocking and
    # water) makes every name holding it ambiguous
    owners: dict[str, set[str]] = {}
    for label in LABELS:
        for name in (*seen[label], *cands[label]):
            for w in name_words(name):
                owners.setdefault(w, set()).add(label)
    return {label: tuple(n for n in cands[label] if n not in seen[label]
                         and all(owners[w] == {label} for w in name_words(n))) for label in LABELS}


def renamed(item: QAItem, names: dict[str, tuple[str, ...]], rng: np.random.Generator) -> QAItem | None:
    """The item asked with each class it names called by another name of that class, or None
    when it names no class (or its names cannot be found in its text)."""
    used = item.extra.get("params", {}).get("names") or {}
    slots = {"a": "a", "b": "b", "label": "label", "c": "c"}
    params = item.extra["params"]
    text = item.question
    for slot, name in used.items():
        label = params.get(slots.get(slot, slot))
        pool = names.get(label, ())
        if not pool:
            return None
        new = pool[int(rng.integers(len(pool)))]
        if name in text:
            text = text.replace(name, new, 1)
        elif capitalise(name) in text:
            text = text.replace(capitalise(name), capitalise(new), 1)
        else:
            return None
    if not used or text == item.question:
        return None
    return dataclasses.replace(item, question=text)
