"""The program-aided language model as an Answerer (torch), for `bench qa`, `ask` and the live
agent: the model writes each question as a program (training/qa/programs.py), and the answer
programs run it on the sources the shipped ONNX encoder heard in the clip (docs/lalm.md).

The model reads no encoder output, so it runs on whichever encoder hears: a better encoder
improves its answers without retraining it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Iterator

from agent.core.errors import BinauraError
from agent.core.predictor import Clip
from agent.core.scene import QAItem, Scene, SourceLabel
from training.models.lalm import load_lalm
from training.qa.programs import parse_program, program_of, run_program

#: A program is a task and a few arguments (the longest on the benchmark: 18 tokens).
MAX_NEW_TOKENS = 32
NOT_UNDERSTOOD = "Sorry, I did not understand the question."
#: (model folder, question) -> the program its model wrote (greedy decoding is deterministic)
_PROGRAMS: dict[tuple[str, str], str] = {}


class ProgramAnswerer:
    needs_audio = True

    def __init__(self, path: str | os.PathLike, hear, batch_size: int = 16, max_new_tokens: int = MAX_NEW_TOKENS,
                 name: str | None = None):
        """hear: clip -> the sources an encoder heard in it, with their time spans (the registry
        builds it from the shipped ONNX encoder: export.registry.encoder_hearing)."""
        self.model, self.meta = load_lalm(path)
        if self.model.cfg.output != "program":
            raise BinauraError(f"{path}: a model that answers in sentences, not a program-aided one")
        self.meta["_folder"] = os.path.realpath(path)
        self.hear = hear
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.name = name or f"program:{path}"
        self.programs: dict[str, str] = {}  # item id -> the program the model wrote
        self._scene_id: str | None = None
        self._heard: Scene | None = None
        self._lock = threading.Lock()  # the live agent may ask from several threads

    def heard_scene(self, clip: Clip) -> Scene:
        """The clip as the encoder heard it: its decoded sources with their time spans."""
        if clip.scene_id != self._scene_id or self._heard is None:
            if clip.audio is None:
                raise BinauraError(f"{clip.scene_id}: the program-aided model needs the clip's audio")
            self._heard = scene_of(clip.scene_id, self.hear(clip), clip.audio.shape[-1] / clip.sample_rate_hz)
            self._scene_id = clip.scene_id
        return self._heard

    def heard_sources(self, clip: Clip) -> list[SourceLabel]:
        return list(self.heard_scene(clip).sources)

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

    def reply(self, program_text: str, heard: Scene, options: list[str] | None) -> str:
        program = parse_program(program_text)
        if program is None:
            return NOT_UNDERSTOOD
        return run_program(program, heard, options)[1]

    def answer_many(self, clip: Clip, items: list[QAItem]) -> list[str]:
        heard = self.heard_scene(clip)
        texts = self.write_programs([q.question for q in items])
        self.programs.update({q.id: t for q, t in zip(items, texts, strict=True)})
        return [self.reply(t, heard, q.options) for q, t in zip(items, texts, strict=True)]

    def answer(self, clip: Clip, item: QAItem) -> str:
        return self.answer_many(clip, [item])[0]

    def report(self, ds) -> dict:
        """How well the model wrote the programs of the items it answered: exactly the reference
        program, or one that gives the same answer on the truth (l1_not_heard asks what l1_sector
        does; a yes/no claim may be worded either way)."""
        exact = same = n = 0
        for q in ds.qa:
            text = self.programs.get(q.id)
            if text is None or "params" not in q.extra:
                continue
            n += 1
            exact += text.strip() == program_of(q).text()
            prog = parse_program(text)
            if prog is not None:
                try:
                    same += run_program(prog, ds.by_id[q.scene_id], q.options)[0] == q.extra.get("answer_text")
                except (KeyError, ValueError):
                    pass
        return {"n": n, "exact": exact / n if n else None, "same_answer_on_truth": same / n if n else None}


def scene_of(scene_id: str, sources: list, duration_s: float) -> Scene:
    """A scene holding only what was heard (no truth, no room): what the answer programs read."""
    return Scene(scene_id, "", 0, duration_s, [dataclasses.replace(s) for s in sources], None, "")


#: Questions no answer program asks (they are not benchmark tasks): the tracks answer them.
_TRACK_QUESTIONS = re.compile(r"\b(saying|said|says|talking about|words|describe)\b|what (do|can) you hear|"
                              r"what('s| is) (going on|around)")


class LiveProgramAnswerer:
    """callable(question, pipeline) -> answer chunks (agent.run.Runner's answerer): the program
    runs on the sources the agent's tracker holds over the last `window_s` seconds. What no
    program asks ("what do you hear?", "what is the person on my left saying?"), and a program
    that does not parse, go to the tracks' own answerer (agent.answer.tracks)."""

    def __init__(self, path: str | os.PathLike, tracks, window_s: float = 5.0):
        """tracks: the tracks' answerer (agent.answer.tracks.TrackAnswerer), for what no program asks."""
        self.model, self.meta = load_lalm(path)
        if self.model.cfg.output != "program":
            raise BinauraError(f"{path}: a model that answers in sentences, not a program-aided one")
        self.window_s = window_s
        self.tracks = tracks
        self.name = f"program:{path}"
        self.last_program: str | None = None
        self._lock = threading.Lock()

    def __call__(self, question: str, pipeline) -> Iterator[str]:
        self.last_program = None
        if _TRACK_QUESTIONS.search(question.lower()):
            yield from self.tracks(question, pipeline)
            return
        with self._lock:
            text = self.model.generate([self.model.encode(question, None)], MAX_NEW_TOKENS)[0]
        self.last_program = text
        program = parse_program(text)
        if program is None:
            yield from self.tracks(question, pipeline)
            return
        tracks = sorted(pipeline.heard_tracks(self.window_s), key=lambda t: -t.confidence)  # a class's best first
        heard = scene_of("live", [SourceLabel(t.label, t.azimuth_deg, t.elevation_deg, t.distance_m, t.t_start,
                                              t.t_last_hit) for t in tracks], self.window_s)
        yield from re.findall(r"\S+\s*", run_program(program, heard, None)[1])  # word by word, as tracks do
