"""Generate qa.jsonl rows from scenes, deterministically from (seed, scene)."""

from __future__ import annotations

import zlib

import numpy as np

from agent.core.scene import OPTION_LETTERS, QAItem, Scene, option_letter
from training.qa.tasks import TASKS, Task, phrase

N_OPTIONS = len(OPTION_LETTERS)


def make_question(task: Task, scene: Scene, rng: np.random.Generator, qid: str) -> QAItem | None:
    params = task.sample(scene, rng)
    if params is None:
        return None
    truth = task.solve(scene, params)
    text = phrase(task, task.phrasings[rng.integers(len(task.phrasings))], params)
    extra = {"answer_type": task.answer_type, "params": params}
    if not task.multiple_choice:
        return QAItem(qid, scene.id, task.level, task.name, text, None, truth, extra)
    distractors = [d for d in task.distract(scene, params, truth, rng) if d != truth]
    distractors = list(dict.fromkeys(distractors))[: N_OPTIONS - 1]
    if len(distractors) < N_OPTIONS - 1:
        return None
    options = [truth] + distractors
    order = rng.permutation(N_OPTIONS)
    options = [options[i] for i in order]
    letter = option_letter(options.index(truth))
    extra["answer_text"] = truth
    return QAItem(qid, scene.id, task.level, task.name, text, options, letter, extra)


def generate_qa(scenes: list[Scene], seed: int, split: str = "train",
                per_scene: int | None = None) -> list[QAItem]:
    """Questions for every scene: each task that applies, or per_scene sampled tasks."""
    out: list[QAItem] = []
    for scene in scenes:
        rng = np.random.default_rng([seed, zlib.crc32(scene.id.encode()), zlib.crc32(split.encode()), 7])
        tasks = list(TASKS)
        if per_scene is not None:
            tasks = [tasks[i] for i in rng.permutation(len(tasks))[:per_scene]]
        for task in tasks:
            item = make_question(task, scene, rng, f"q{len(out):07d}")
            if item is not None:
                out.append(item)
    return out
