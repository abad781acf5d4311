"""More wordings for the parser's training questions (issue 20: people do not speak in templates).

The QA generator words each question with one of 8 seen phrasings of its task and one of a few
everyday names per class (phrasing.py); AudioSet's class names add more names (augment.py).
A parser trained on those alone learns a lookup table, and held-out wordings score well below
seen ones. Here a training question is asked once more, in a wording written for training
only (rewording_data.py, >= 10 templates per task, >= 12 names per class): a random extra
template of the same task and form (yes/no or not, with the same fields), its class names
each swapped with probability NAME_P for an extra name of the same class. The params are
the source item's, so its program (agent/qa/programs.program_of) is too.

check() proves the held-out wordings stay unseen: no extra template equals or near-copies a
held-out phrasing (no NGRAM words in a row in common, after normalising case, punctuation and
field names) or equals a seen one; no extra name shares a word stem with a held-out name
(augment.near_heldout), holds a direct synonym of one (HELDOUT_SYNONYMS), equals a seen or an
AudioSet name, or holds a word another class is called by; every template renders through
the generator's own filling code (phrasing.render) for an item of its task.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Iterable

import numpy as np

from agent.core.labels import LABELS, name_key
from agent.core.scene import QAItem
from training.qa.augment import extra_names, heldout_words, name_words, near_heldout
from training.qa.phrasing import PHRASINGS, is_yesno, name_pools, render
from training.qa.rewording_data import EXTRA_NAMES, EXTRA_PHRASINGS
from training.qa.tasks import TASKS_BY_NAME

__all__ = ["EXTRA_NAMES", "EXTRA_PHRASINGS", "check", "reworded"]

#: A reworded item's class names are each swapped for an extra name with this probability.
NAME_P = 0.5
#: An extra template may share no run of this many words with a held-out phrasing.
NGRAM = 5
MIN_PHRASINGS, MIN_PER_FORM, MIN_NAMES = 10, 4, 12
#: Words no extra name may hold: direct synonyms of a held-out name ("a tune", "the faucet",
#: "the mobile phone", "a window breaking", "the ventilation"), which pass the stem rule.
HELDOUT_SYNONYMS = frozenset({"melody", "ditty", "spigot", "tap", "cell", "cellphone", "smartphone", "pane",
                              "aircon", "conditioning", "conditioner", "hvac", "keystroke"})
#: Words that tell no class apart, which names of several classes may share.
GENERIC = frozenset({"someone", "somebody", "something", "people", "going", "off"})


def _group(field: str) -> str:
    """What a template field says: a class slot (a, b, label), the claim, a sector, a turn, a distance."""
    f = field.lower().removesuffix("_is")
    if f.startswith("claim"):
        return "claim"
    if f.startswith("where") or f == "sector":
        return "where"
    if f.startswith("turn"):
        return "turn"
    return "dist" if f == "distance_m" else f


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def signature(template: str) -> tuple[bool, frozenset[str]]:
    """(yes/no?, what the template says): an extra template must match one of its task's."""
    return is_yesno(template), frozenset(map(_group, _fields(template)))


def normalise(template: str) -> tuple[str, ...]:
    """The template's words, lower case, no punctuation, each field as what it says ({A_is} -> "is")."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        if field:
            parts.append(" is " if field.lower().endswith("_is") else f" {_group(field)} ")
    return tuple(re.findall(r"[a-z0-9]+", "".join(parts).lower().replace("'", "")))


def _grams(words: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {words[i:i + NGRAM] for i in range(len(words) - NGRAM + 1)}


def phrasing_problems() -> list[str]:
    """Extra templates that are too few, not new, near a held-out phrasing or ask something else."""
    out = [f"{t}: no such task" for t in set(EXTRA_PHRASINGS) - set(PHRASINGS)]
    held = {normalise(t) for g in PHRASINGS.values() for t in g.heldout}
    held_grams = set().union(*map(_grams, held))
    seen = {normalise(t) for g in PHRASINGS.values() for t in g.seen}
    for task, group in PHRASINGS.items():
        extras = EXTRA_PHRASINGS.get(task, ())
        if len(set(extras)) < MIN_PHRASINGS:
            out.append(f"{task}: {len(set(extras))} distinct extra phrasings, want >= {MIN_PHRASINGS}")
        asks = {signature(t) for t in group.all}
        for form in {yesno for yesno, _ in asks}:
            n = sum(is_yesno(t) == form for t in extras)
            if n < MIN_PER_FORM:
                out.append(f"{task}: {n} extra {'yes/no' if form else 'other'} phrasings, want >= {MIN_PER_FORM}")
        for t in extras:
            words = normalise(t)
            if words in held:
                out.append(f"{task}: {t!r} is a held-out phrasing")
            elif near := sorted(_grams(words) & held_grams):
                out.append(f"{task}: {t!r} shares {' '.join(near[0])!r} with a held-out phrasing")
            if words in seen:
                out.append(f"{task}: {t!r} is a seen phrasing")
            if signature(t) not in asks:
                out.append(f"{task}: {t!r} says {sorted(signature(t)[1])}, not what the task's phrasings say")
    return out


def name_problems() -> list[str]:
    """Extra names that are too few, seen already, near a held-out name or shared with another class."""
    held, augment = heldout_words(), extra_names()
    seen = {name_key(n) for label in LABELS for n in name_pools(label)[0]}
    audioset = {n for pool in augment.values() for n in pool}
    words_of = {label: {w for n in (*name_pools(label)[0], *augment[label], *EXTRA_NAMES.get(label, ()))
                        for w in name_words(n)} for label in LABELS}
    out = [f"{label}: not a label" for label in set(EXTRA_NAMES) - set(LABELS)]
    for label in LABELS:
        pool = EXTRA_NAMES.get(label, ())
        if len(set(pool)) < MIN_NAMES:
            out.append(f"{label}: {len(set(pool))} distinct extra names, want >= {MIN_NAMES}")
        others = set().union(*(words_of[o] for o in LABELS if o != label)) - GENERIC
        for n in pool:
            if near_heldout(n, held):
                out.append(f"{label}: {n!r} shares a stem with a held-out name")
            if set(name_words(n)) & HELDOUT_SYNONYMS:
                out.append(f"{label}: {n!r} holds a synonym of a held-out name")
            if name_key(n) in seen or n in audioset:
                out.append(f"{label}: {n!r} is a seen name (or AudioSet's)")
            if shared := sorted(set(name_words(n)) & others):
                out.append(f"{label}: {n!r} holds {shared}, a word of another class's names")
    return out


def reworded(item: QAItem, rng: np.random.Generator, name_p: float = NAME_P,
             template: str | None = None) -> QAItem | None:
    """The item asked with a random extra template of its task and form (or `template`), each
    class name swapped for an extra one with probability name_p; None for an item without
    the generator's params or a task without extra templates of its form."""
    params = item.extra.get("params")
    if params is None or item.task not in EXTRA_PHRASINGS:
        return None
    if template is None:
        form = signature(next((t for t in PHRASINGS[item.task].all if is_yesno(t) == ("claim" in params)), ""))
        pool = [t for t in EXTRA_PHRASINGS[item.task] if signature(t) == form]
        if not pool:
            return None
        template = pool[int(rng.integers(len(pool)))]
    names, swapped = dict(params.get("names") or {}), False
    for slot in names:
        extra = EXTRA_NAMES.get(params.get(slot), ())
        if extra and rng.random() < name_p:
            names[slot], swapped = extra[int(rng.integers(len(extra)))], True
    new = {**params, "names": names}
    text = render(template, new, TASKS_BY_NAME[item.task].claim)
    extra = {**item.extra, "params": new, "phrasing": "extra",
             "phrasing_id": EXTRA_PHRASINGS[item.task].index(template) if template in EXTRA_PHRASINGS[item.task]
             else None}
    if swapped:
        extra["name_form"] = "extra"
    return dataclasses.replace(item, question=text, extra=extra)


def render_problems(items: Iterable[QAItem]) -> list[str]:
    """Extra templates that do not render for an item of their task and form (generated items,
    training/qa/generate.py), with the item's names and with extra names."""
    sample: dict[tuple[str, bool], QAItem] = {}
    for q in items:
        sample.setdefault((q.task, "claim" in q.extra["params"]), q)
    out, rng = [], np.random.default_rng(0)
    for task, extras in EXTRA_PHRASINGS.items():
        for t in extras:
            q = sample.get((task, is_yesno(t)))
            if q is None:
                out.append(f"{task}: no generated item to render {t!r} with")
                continue
            for p in (0.0, 1.0):
                try:
                    text = reworded(q, rng, p, template=t).question
                except (KeyError, IndexError, ValueError) as e:
                    out.append(f"{task}: {t!r} does not render ({type(e).__name__}: {e})")
                    break
                if "{" in text or "}" in text:
                    out.append(f"{task}: {t!r} renders as {text!r}")
    return out


def check(items: Iterable[QAItem] = ()) -> list[str]:
    """Every problem of the extra wordings (empty: none); items (a generated split covering
    every task and form) also render every template."""
    items = list(items)
    return phrasing_problems() + name_problems() + (render_problems(items) if items else [])
