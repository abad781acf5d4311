"""The program-aided language model as an Answerer (torch), for `bench qa`, `ask` and the live
agent: the model writes each question as a program (agent/qa/programs.py), and the answer
programs run it on the sources the shipped ONNX encoder heard in the clip (docs/lalm.md).
Everything but the writing is shared with the bundle's torch-free answerer
(agent/answer/programs.py).

The model reads no encoder output, so it runs on whichever encoder hears: a better encoder
improves its answers without retraining it.
"""

from __future__ import annotations

import os

import torch

from agent.answer.programs import (
    MAX_NEW_TOKENS,
    Fallback,
    Hearing,
    LiveProgramAnswering,
    ProgramAnswering,
)
from agent.core.errors import BinauraError
from training.models.lalm import IGNORE, load_lalm

#: (model folder, question) -> the program its model wrote (greedy decoding is deterministic)
_PROGRAMS: dict[tuple[str, str], str] = {}
#: (model folder, question, task) -> (the program written with that task, its log-probability)
_REWRITES: dict[tuple[str, str, str], tuple[str, float]] = {}


def _load_program_model(path: str | os.PathLike):
    model, meta = load_lalm(path)
    if model.cfg.output != "program":
        raise BinauraError(f"{path}: a model that answers in sentences, not a program-aided one")
    return model, meta


class ProgramAnswerer(ProgramAnswering):
    def __init__(self, path: str | os.PathLike, hear: Hearing, batch_size: int = 64,
                 max_new_tokens: int = MAX_NEW_TOKENS, name: str | None = None, fallback: Fallback | None = None):
        """hear: clip -> the sources an encoder heard in it, with their time spans
        (agent.answer.hearing.encoder_hearing over the shipped ONNX encoder). fallback: for an
        open question no program asks (`ask` passes agent.answer.programs.tracks_reply; the
        benchmark none)."""
        self.model, self.meta = _load_program_model(path)
        self.meta["_folder"] = os.path.realpath(path)
        super().__init__(hear, name or f"program:{path}", fallback)
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens

    def write_with_tasks(self, question: str, tasks: tuple[str, ...]) -> list[tuple[str, float]]:
        """Checked decoding's rewrites (module function write_with_tasks), remembered per task."""
        key = str(self.meta.get("_folder", id(self.model)))
        todo = tuple(t for t in tasks if (key, question, t) not in _REWRITES)
        with self._lock:
            for i in range(0, len(todo), self.batch_size):
                for t, got in zip(todo[i:i + self.batch_size],
                                  write_with_tasks(self.model, question, todo[i:i + self.batch_size], self.max_new_tokens),
                                  strict=True):
                    _REWRITES[(key, question, t)] = got
        return [_REWRITES[(key, question, t)] for t in tasks]

    def write_programs(self, questions: list[str]) -> list[str]:
        """The model's program text for each question (greedy, batched). A program depends on
        the question alone, so it is written once per model and question (the mono baseline
        and a second bench of the same model reuse it)."""
        key = str(self.meta.get("_folder", id(self.model)))
        todo = list(dict.fromkeys(q for q in questions if (key, q) not in _PROGRAMS))
        with self._lock:
            for i in range(0, len(todo), self.batch_size):
                batch = todo[i:i + self.batch_size]
                texts = self.model.generate([self.model.encode(q, None) for q in batch], self.max_new_tokens)
                _PROGRAMS.update({(key, q): t for q, t in zip(batch, texts, strict=True)})
        return [_PROGRAMS[(key, q)] for q in questions]


@torch.no_grad()
def write_with_tasks(model, question: str, tasks: tuple[str, ...], max_new_tokens: int = MAX_NEW_TOKENS
                     ) -> list[tuple[str, float]]:
    """The program the model writes for `question` when its first tokens are fixed to each task
    name (greedy after them, batched), with the sum of the log-probabilities of its tokens and
    of the end-of-turn that closed it: agent.answer.programs.TaskWriter (the bundle's decoder
    scores the same tokens: agent.answer.bundle_answerer)."""
    if not tasks:
        return []
    prompt = model.encode(question, None)
    n = len(prompt["input_ids"])
    forced = [model.tokenizer(task, add_special_tokens=False)["input_ids"] for task in tasks]
    examples = [{"input_ids": prompt["input_ids"] + f, "audio_mask": prompt["audio_mask"] + [False] * len(f)}
                for f in forced]
    out = model.llm.generate(**model.greedy_kwargs(examples, max_new_tokens - min(map(len, forced))))
    written, scored = [], []
    for f, row in zip(forced, out.tolist(), strict=True):
        room = max_new_tokens - len(f)
        gen = row[:row.index(model.stop_id) + 1] if model.stop_id in row[:room] else row[:room]
        written.append(f + [t for t in gen if t != model.stop_id])
        scored.append({"input_ids": prompt["input_ids"] + f + gen, "audio_mask": prompt["audio_mask"] + [False] * (len(f) + len(gen)),
                       "labels": [IGNORE] * n + f + gen})
    batch = model.collate(scored)
    logits = model.forward(batch["input_ids"], batch["attention_mask"], batch["audio_mask"]).logits.float()
    labels = batch["labels"][:, 1:]
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    scores = (logp * (labels >= 0)).sum(dim=1)
    return [(" ".join(model.tokenizer.decode(w, skip_special_tokens=True).split()), float(sc))
            for w, sc in zip(written, scores, strict=True)]


class LiveProgramAnswerer(LiveProgramAnswering):
    """The live agent's answerer over the torch model (agent/answer/programs.py says what it does)."""

    def __init__(self, path: str | os.PathLike, tracks, window_s: float = 5.0):
        """tracks: the tracks' answerer (agent.answer.tracks.TrackAnswerer), for what no program asks."""
        self.model, self.meta = _load_program_model(path)
        super().__init__(tracks, window_s, f"program:{path}")

    def write_program(self, question: str) -> str:
        return self.model.generate([self.model.encode(question, None)], MAX_NEW_TOKENS)[0]

    def write_with_tasks(self, question: str, tasks: tuple[str, ...]) -> list[tuple[str, float]]:
        return write_with_tasks(self.model, question, tasks)
