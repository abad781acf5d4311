"""Reference predictors: chance, text-only prior, oracle (proves the scorer), perception bound."""

from __future__ import annotations

import dataclasses
import zlib
from collections import Counter, defaultdict

import numpy as np

from agent.core.labels import LABELS, display
from agent.core.predictor import Clip
from agent.core.scene import QAItem, Scene, SourceEstimate, option_letter
from agent.qa.tasks import ANSWER_TASKS_BY_NAME, turn_text
from training.qa.score import parse_turn


def _clip_rng(seed: int, clip: Clip, salt: str = "") -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32((clip.scene_id + salt).encode())])


class ChanceLocalizer:
    """1-3 sources at random directions (uniform on the sphere), distances and classes."""

    name = "chance"
    needs_audio = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def localize(self, clip: Clip) -> list[SourceEstimate]:
        rng = _clip_rng(self.seed, clip)
        k = int(rng.integers(1, 4))
        return [SourceEstimate(float(rng.uniform(-180, 180)), float(np.rad2deg(np.arcsin(rng.uniform(-1, 1)))),
                               float(np.exp(rng.uniform(np.log(0.5), np.log(5.0)))),
                               str(rng.choice(LABELS))) for _ in range(k)]


class OracleLocalizer:
    """Answers with the ground truth: every error metric must come out 0."""

    name = "oracle"
    needs_audio = False

    def localize(self, clip: Clip) -> list[SourceEstimate]:
        return [SourceEstimate(s.azimuth_deg, s.elevation_deg, s.distance_m, s.label)
                for s in clip.truth.sources]


class ChanceAnswerer:
    name = "chance"
    needs_audio = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def answer(self, clip: Clip, item: QAItem) -> str:
        rng = _clip_rng(self.seed, clip, item.id)
        if item.options:
            return option_letter(int(rng.integers(len(item.options))))
        kind = item.extra.get("answer_type")
        if kind == "deg":
            return f"{rng.uniform(-180, 180) if 'azimuth' in item.task else rng.uniform(0, 180):.0f} deg"
        if kind == "m":
            return f"{np.exp(rng.uniform(np.log(0.5), np.log(5.0))):.1f} m"
        if kind == "turn":
            return f"{rng.choice(['left', 'right'])} {rng.uniform(0, 180):.0f} deg"
        return display(str(rng.choice(LABELS)))


class OracleAnswerer:
    """Solves each question from the scene metadata and answers in words, not letters,
    so a perfect score proves the generator, the option mapping and the parsers agree."""

    name = "oracle"
    needs_audio = False

    def answer(self, clip: Clip, item: QAItem) -> str:
        return ANSWER_TASKS_BY_NAME[item.task].solve(clip.truth, item.extra["params"])


class PerceptionBoundAnswerer:
    """The oracle's answer program applied to what a localizer heard instead of the truth: what
    a perfect reasoner could score with that encoder (issue 20's perception bound). `hear`
    maps a clip to the sources it heard (labels, directions, distances, time spans); a
    question about a class it did not hear gets "I don't hear ..." where the task allows
    that answer, and no answer where the task's program needs the class."""

    needs_audio = True

    def __init__(self, hear, name: str = "perception-bound"):
        self.hear, self.name = hear, name
        self._scene_id: str | None = None
        self._heard: Scene | None = None

    def answer(self, clip: Clip, item: QAItem) -> str | None:
        if clip.scene_id != self._scene_id:
            truth = clip.truth
            sources = self.hear(clip)
            self._heard = dataclasses.replace(truth, sources=sources) if truth is not None else Scene(
                clip.scene_id, "", clip.sample_rate_hz, clip.audio.shape[-1] / clip.sample_rate_hz, sources, None, "")
            self._scene_id = clip.scene_id
        try:
            return ANSWER_TASKS_BY_NAME[item.task].solve(self._heard, item.extra["params"])
        except (StopIteration, KeyError, TypeError, ValueError):  # e.g. min() over no heard source
            return None  # the program needs a source the encoder did not hear


class TextOnlyAnswerer:
    """The most frequent answer per task, learned without audio.

    fit() counts answer contents per task on questions from other scenes (the
    bench cross-fits: scenes split in two halves by id hash, each half answered
    from the other's counts). For a multiple-choice item it picks the option
    whose content was most often right; for an open item the most frequent
    canonical answer (the median for numbers).
    """

    name = "text-only"
    needs_audio = False

    def __init__(self):
        self.counts: dict[int, dict[str, Counter]] = {0: defaultdict(Counter), 1: defaultdict(Counter)}

    @staticmethod
    def fold(scene_id: str) -> int:
        return zlib.crc32(scene_id.encode()) % 2

    def fit(self, items: list[QAItem]) -> TextOnlyAnswerer:
        for q in items:
            content = q.extra.get("answer_text", q.answer)
            self.counts[self.fold(q.scene_id)][q.task][content] += 1
        return self

    def answer(self, clip: Clip, item: QAItem) -> str:
        counts = self.counts[1 - self.fold(item.scene_id)][item.task]
        if item.options:
            best = max(range(len(item.options)), key=lambda i: (counts.get(item.options[i], 0), -i))
            return option_letter(best)
        if not counts:
            return ""
        kind = item.extra.get("answer_type")
        if kind in ("deg", "m"):
            values = [float(k.split()[0]) for k, c in counts.items() for _ in range(c)]
            return f"{np.median(values):.1f} {'deg' if kind == 'deg' else 'm'}"
        if kind == "turn":
            values = [parse_turn(k) for k, c in counts.items() for _ in range(c)]
            return turn_text(float(np.median(values)))
        return counts.most_common(1)[0][0]
