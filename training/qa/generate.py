"""Generate qa.jsonl rows from scenes, deterministically from (seed, scene, split).

Each item is worded with one of its task's phrasings and everyday names for its classes
(phrasing.py), may be a yes/no form of its task, may ask about a class the scene does not
hold, and carries its answer as a sentence (agent/qa/sentences.py). Keys beyond the QA contract, on
every item (docs/benchmark.md):
  answer_type    "choice" | "deg" | "m" | "turn": how the answer is scored
  params         what the task sampled, the class names used ("names") and a yes/no "claim"
  answer_text    the right option's text (choice) or the canonical open answer
  answer_sentence  the answer as a sentence a person wants to hear
  answer_reply   what a model is trained to say: "B. " + answer_sentence for a choice item,
                 answer_sentence for an open one
  form           "choice" | "yesno" | "open"
  phrasing, phrasing_id  "seen" | "heldout", index into the task's phrasings (seen first)
  name_form      "seen" | "heldout", or null when the question names no class
  wording        "heldout" if the phrasing or a name is held out, else "seen"
  asks_absent    the question asks about a class the scene does not hold

A scene may hold two sources of one class (SynthConfig.p_same_class): a question that names
such a class ("where is the dog?") has no one answer, so it is not asked (`names_repeated`);
questions that name only other classes, or none, are asked as usual.
"""

from __future__ import annotations

import string
import zlib
from dataclasses import dataclass

import numpy as np

from agent.core.labels import LABELS, display, not_heard
from agent.core.rotation import scene_heard_at
from agent.core.scene import OPTION_LETTERS, QAItem, Scene, option_letter
from agent.qa.sentences import say
from agent.qa.tasks import NOT_HEARD_TASK
from training.qa.phrasing import PHRASINGS, is_yesno, name_pools, render
from training.qa.tasks import (
    TASKS,
    YES_NO_OPTIONS,
    Task,
    absent_classes,
    with_phantom,
)

N_OPTIONS = len(OPTION_LETTERS)
#: qa.jsonl ids: "q" and the item's row number in the file, 7 digits (more past 9,999,999).
QA_ID_FORM = "q{:07d}"
_LABEL_OF_DISPLAY = {display(c): c for c in LABELS}
_SLOT_OF_FIELD = {f: slot for slot in ("a", "b", "label")
                  for f in (slot, slot.capitalize(), f"{slot}_is", f"{slot.capitalize()}_is")}
_SLOT_OF_FIELD.update(dict.fromkeys(("claim_me", "claim_you", "claim_is", "Claim_is"), "c"))


@dataclass(frozen=True)
class QAConfig:
    """The mix of wordings and question kinds. Shares are probabilities per item."""

    heldout_splits: tuple[str, ...] = ("bench",)  # only these splits use held-out wordings
    heldout_phrasing_p: float = 0.5  # held-out splits: items worded with a held-out phrasing
    heldout_name_p: float = 0.5  # held-out splits: items naming classes by their held-out names
    absent_target_p: float = 0.1  # l1_sector/elevation/distance_bin: ask about an absent class
    offer_not_heard_p: float = 0.2  # ... about a present class: still offer "I don't hear ..."
    not_heard_absent_p: float = 0.5  # l1_not_heard: items about an absent class (the rest: controls)
    yes_p: float = 0.5  # yes/no forms: items whose claim is true


def _slots(template: str) -> list[str]:
    """The name slots a template mentions, in order."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    return list(dict.fromkeys(_SLOT_OF_FIELD[f] for f in fields if f in _SLOT_OF_FIELD))


#: the params that name a class of the scene a question asks about (training/qa/tasks.py)
_CLASS_PARAMS = ("a", "b", "label")


def repeated_classes(scene: Scene) -> set[str]:
    """The classes the scene holds more than one source of."""
    seen: set[str] = set()
    return {s.label for s in scene.sources if s.label in seen or seen.add(s.label)}


def names_repeated(scene: Scene, params: dict) -> bool:
    """Whether a question with these params names a class the scene holds twice or more."""
    twice = repeated_classes(scene)
    return bool(twice) and any(params.get(k) in twice for k in _CLASS_PARAMS)


def _choice_options(task: Task, scene: Scene, params: dict, rng: np.random.Generator,
                    asks_absent: bool, offer_not_heard: bool) -> list[str] | None:
    """[truth, distractors...]; with the not-heard option last when offered.

    About an absent class, the options are built exactly as for a present one, around a
    phantom source of that class, so their form does not give the answer away.
    """
    view = with_phantom(scene, params["a"], rng) if asks_absent else scene
    shown = task.rule(view, params)
    distractors = list(dict.fromkeys(d for d in task.distract(view, params, shown, rng) if d != shown))
    n = N_OPTIONS - 1 - offer_not_heard
    if len(distractors) < n:
        return None
    options = [shown] + distractors[:n]
    if offer_not_heard:
        options.append(not_heard(params["a"]))
    return options


def _yes_no_claim(task: Task, scene: Scene, params: dict, rng: np.random.Generator, cfg: QAConfig) -> str:
    truth = task.rule(scene, params)
    asked = {params[k] for k in ("a", "b") if k in params}
    others = [d for d in dict.fromkeys(task.distract(scene, params, truth, rng)) if d != truth
              and (task.claim != "label" or (d in _LABEL_OF_DISPLAY and _LABEL_OF_DISPLAY[d] not in asked))]
    if not others or rng.random() < cfg.yes_p:
        return truth
    return others[int(rng.integers(len(others)))]


def make_question(task: Task, scene: Scene, rng: np.random.Generator, qid: str, split: str = "train",
                  cfg: QAConfig | None = None) -> QAItem | None:
    cfg = cfg or QAConfig()
    params = task.sample(scene, rng)
    if params is None:
        return None
    held_out_split = split in cfg.heldout_splits
    group = PHRASINGS[task.name]
    heldout_phrasing = held_out_split and rng.random() < cfg.heldout_phrasing_p
    pool = group.heldout if heldout_phrasing else group.seen
    k = int(rng.integers(len(pool)))
    template = pool[k]
    yesno = is_yesno(template)
    asks_absent = offer_not_heard = False
    options: list[str] | None = None
    if yesno:
        params["claim"] = _yes_no_claim(task, scene, params, rng, cfg)
        if task.claim == "label":
            params["c"] = _LABEL_OF_DISPLAY[params["claim"]]
        options = list(YES_NO_OPTIONS)
    elif task.multiple_choice:
        if task.target:
            absent = absent_classes(scene)
            p_absent = cfg.not_heard_absent_p if task.name == NOT_HEARD_TASK else cfg.absent_target_p
            if absent and rng.random() < p_absent:
                params["a"] = absent[int(rng.integers(len(absent)))]
                asks_absent = True
            offer_not_heard = asks_absent or task.name == NOT_HEARD_TASK or rng.random() < cfg.offer_not_heard_p
        options = _choice_options(task, scene, params, rng, asks_absent, offer_not_heard)
        if options is None:
            return None
        options = [options[i] for i in rng.permutation(len(options))]
    if names_repeated(scene, params):  # "where is the dog?" with two dogs: no one answer
        return None
    slots = [s for s in _slots(template) if s in params]
    heldout_names = bool(slots) and held_out_split and rng.random() < cfg.heldout_name_p
    names = {}
    for slot in slots:
        seen, held = name_pools(params[slot])
        names_pool = held if heldout_names and held else seen
        names[slot] = names_pool[int(rng.integers(len(names_pool)))]
    params["names"] = names
    text = render(template, params, task.claim)
    truth = task.solve(scene, params)
    sentence = say(task.name, scene, params, truth)
    extra = {"answer_type": task.answer_type, "params": params, "answer_text": truth,
             "answer_sentence": sentence, "answer_reply": sentence,
             "form": "yesno" if yesno else "choice" if options else "open",
             "phrasing": "heldout" if heldout_phrasing else "seen",
             "phrasing_id": k + (len(group.seen) if heldout_phrasing else 0),
             "name_form": ("heldout" if heldout_names else "seen") if slots else None,
             "wording": "heldout" if heldout_phrasing or heldout_names else "seen",
             "asks_absent": asks_absent}
    if options is None:
        return QAItem(qid, scene.id, task.level, task.name, text, None, truth, extra)
    letter = option_letter(options.index(truth))
    extra["answer_reply"] = f"{letter}. {sentence}"
    return QAItem(qid, scene.id, task.level, task.name, text, options, letter, extra)


def qa_id(row: int) -> str:
    """The id of the item on row `row` (0-based) of qa.jsonl."""
    return QA_ID_FORM.format(row)


def generate_qa(scenes: list[Scene], seed: int, split: str = "train",
                per_scene: int | None = None, cfg: QAConfig | None = None) -> list[QAItem]:
    """Questions for every scene: each task that applies, or per_scene sampled tasks. A scene
    whose head turns is asked about in the head frame at its end (agent.core.rotation.scene_heard_at).

    A scene's items are a function of (seed, scene, split) alone; only their ids, the row
    numbers (qa_id), depend on the scenes before it, so a dataset rendered in shards gets the
    whole build's qa.jsonl by renumbering the shards' rows in order (training/synth/shards.py)."""
    out: list[QAItem] = []
    for scene in map(scene_heard_at, scenes):
        rng = np.random.default_rng([seed, zlib.crc32(scene.id.encode()), zlib.crc32(split.encode()), 7])
        tasks = list(TASKS)
        if per_scene is not None:
            tasks = [tasks[i] for i in rng.permutation(len(tasks))[:per_scene]]
        for task in tasks:
            item = make_question(task, scene, rng, qa_id(len(out)), split, cfg)
            if item is not None:
                out.append(item)
    return out
