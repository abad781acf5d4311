"""Examples for the audio-language model's curriculum, from a dataset and its encoder-output cache.

- "align" (projector only): one example per clip, a description of the scene written from its
  metadata ("I hear the dog to your back-right, about 2 metres away, and ...") asked for in a
  few everyday ways.
- "sft": every QA item, the target being its `answer_reply` (the option letter, then a sentence
  a person wants to hear; agent/qa/sentences.py); items from an older qa.jsonl without it
  fall back to the canonical answer.
- "parse" (the program-aided model): every QA item's question alone, the target being its
  program (agent/qa/programs.py); no audio, so no encoder cache.
With `heard`, the prompt also carries the encoder's decoded sources as text (agent.core.prompt.
heard_line): the cascade baseline's only view of the audio, the full model's second one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agent.core.dataset import Dataset
from agent.core.errors import BinauraError
from agent.core.geometry import sector_of
from agent.core.labels import display
from agent.core.prompt import heard_line
from agent.core.scene import QAItem, Scene, SourceLabel
from agent.core.seld import SELD_PER_CLASS, DecodeConfig, heard_sources
from agent.core.tracks import slot_labels
from agent.qa.programs import program_of
from agent.qa.sentences import capitalise, metres, where
from training.qa.augment import extra_names, renamed
from training.qa.rewording import reworded
from training.recipes.lalm_cache import EncoderCache

STAGES = ("align", "sft", "parse")
DESCRIBE_QUESTIONS = ("Describe what you hear.", "What do you hear around me?",
                      "Tell me which sounds there are and where they are.", "What is going on around me?")


@dataclass(frozen=True)
class Example:
    row: int  # the clip's row in the encoder cache
    question: str
    options: list[str] | None
    target: str
    context: str | None = None  # the heard line
    scene_id: str = ""


def describe(sources: list) -> str:
    """Sources (true SourceLabels or an encoder's SourceEstimates) as one sentence, nearest first."""
    if not sources:
        return "I don't hear any distinct sound."
    ordered = sorted(sources, key=lambda s: (s.distance_m is None, s.distance_m or 0.0))
    parts = []
    for s in ordered:
        part = f"{display(s.label)} {where(sector_of(s.azimuth_deg))}"
        if s.distance_m is not None:
            part += f", about {metres(s.distance_m)} away"
        parts.append(part)
    listed = parts[0] if len(parts) == 1 else "; ".join(parts[:-1]) + "; and " + parts[-1]
    return capitalise(f"I hear {listed}.")


def heard_from(seld: np.ndarray, labels: tuple[str, ...], output_rate_hz: float,
               decode: DecodeConfig | None = None) -> list[SourceLabel]:
    """The sources a clip's SELD vectors (T, S * 5) decode to, with their time spans; labels:
    one per slot (agent.core.tracks.slot_labels; the classes for a one-track encoder)."""
    seld = np.asarray(seld, np.float32)
    per = seld.reshape(seld.shape[0], len(labels), SELD_PER_CLASS)
    return heard_sources(per[..., :3], per[..., 3], labels, output_rate_hz, decode)


def heard_in(cache: EncoderCache, row: int, decode: DecodeConfig | None = None) -> list[SourceLabel]:
    """The encoder's clip-level sources (with time spans) for a cache row."""
    labels = slot_labels(tuple(cache.meta["labels"]), cache.meta.get("tracks", 1))
    return heard_from(cache.seld[row], labels, cache.meta["output_rate_hz"], decode)


def build_examples(ds: Dataset, cache: EncoderCache | None, stage: str, heard: bool = False,
                   seed: int = 0, rename: bool = False, rewordings: bool = False) -> list[Example]:
    """Every example of `stage` whose clip is in the cache (a dataset and its cache must match;
    the parse stage needs no cache). rename (parse stage): each question that names a class is
    also asked with other names for it (training/qa/augment.py). rewordings (parse stage):
    each question is also asked once in a wording written for training only, an extra
    template of its task and, for half its class names, extra names (training/qa/rewording.py):
    one more example per question, so the questions' examples double (beside rename's)."""
    if stage not in STAGES:
        raise BinauraError(f"stage must be one of {STAGES}, got {stage!r}")
    if stage != "align" and not ds.qa:
        raise BinauraError(f"{ds.root}: no qa.jsonl; the {stage} stage trains on the QA items")
    if stage == "parse":
        return [parse_example(q) for q in parse_items(ds, seed, rename, rewordings)]
    index = cache.index if cache is not None else {s.id: -1 for s in ds.scenes}  # no audio: no rows
    missing = [s.id for s in ds.scenes if s.id not in index]
    if missing:
        raise BinauraError(f"{cache.path}: no encoder outputs for {len(missing)} clip(s) of {ds.root} "
                           f"(e.g. {missing[0]}); rebuild the cache for this dataset")
    contexts: dict[str, str | None] = {}

    def context(scene: Scene) -> str | None:
        if not heard:
            return None
        if scene.id not in contexts:
            contexts[scene.id] = heard_line(heard_in(cache, index[scene.id]))
        return contexts[scene.id]

    rng = np.random.default_rng(seed)
    if stage == "align":
        return [Example(index[s.id], DESCRIBE_QUESTIONS[int(rng.integers(len(DESCRIBE_QUESTIONS)))], None,
                        describe(s.sources), context(s), s.id) for s in ds.scenes]
    return [Example(index[q.scene_id], q.question, q.options, q.extra.get("answer_reply") or q.answer,
                    context(ds.by_id[q.scene_id]), q.scene_id) for q in ds.qa]


def parse_items(ds: Dataset, seed: int = 0, rename: bool = False, rewordings: bool = False) -> list[QAItem]:
    """The questions the parse stage trains on: every QA item, then (rename) the ones that name a
    class asked with other names for it, then (rewordings) each asked once in a training-only
    wording; each keeps its scene, task, parameters and answer."""
    items = list(ds.qa)
    if rename:
        names, rng = extra_names(), np.random.default_rng([seed, 20])
        items += [r for r in (renamed(q, names, rng) for q in ds.qa) if r is not None]
    if rewordings:
        rng = np.random.default_rng([seed, 21])
        items += [r for r in (reworded(q, rng) for q in ds.qa) if r is not None]
    return items


def parse_example(item: QAItem) -> Example:
    """A parse-stage example: the question alone, its program as the target."""
    return Example(-1, item.question, None, program_of(item).text(), None, item.scene_id)


class ExampleDataset(torch.utils.data.Dataset):
    """Examples tokenized by the model (`SpatialLALM.encode`) with their clip's encoder outputs."""

    def __init__(self, model, cache: EncoderCache, examples: list[Example], with_target: bool = True):
        self.model, self.cache, self.examples, self.with_target = model, cache, examples, with_target

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        ex = self.examples[i]
        item = self.model.encode(ex.question, ex.options, ex.target if self.with_target else None, ex.context)
        if self.model.n_audio:
            item["spatial"], item["semantic"], item["seld"] = self.cache.clip(ex.row)
        return item
