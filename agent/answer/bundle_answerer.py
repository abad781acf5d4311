"""Answering through the edge bundle, torch-free (issue 23): numpy + onnxruntime + tokenizers.

The bundle's language model (a program-aided one, its LoRA merged at export) writes the
question as a program: the prompt is agent.core.prompt.render_program (the question alone),
decoded greedily by agent.answer.decoder.OnnxDecoder until the end-of-turn token or
MAX_NEW_TOKENS; the program runs on what the bundle's own encoder heard (agent/qa, through
agent/answer/programs.py, which the torch answerer shares). What no program asks falls back as
the torch answerers do.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from agent.answer.bundle import Bundle, read_bundle
from agent.answer.decoder import GenerationConfig, OnnxDecoder
from agent.answer.programs import (
    MAX_NEW_TOKENS,
    Fallback,
    Hearing,
    LiveProgramAnswering,
    ProgramAnswering,
    tracks_reply,
)
from agent.core.errors import BinauraError
from agent.core.prompt import render_program

#: The `llm.source.output` a bundle's language model must have to write programs.
PROGRAM_OUTPUT = "program"


#: How a command line names a bundle as its answerer: `bundle:DIR`, `bundle:DIR:int4`, `bundle:DIR:fp32`.
MODEL_PREFIX = "bundle:"


def parse_model_name(name: str) -> tuple[str, str | None]:
    """`bundle:DIR[:int4|fp32]` -> (DIR, precision or None: the bundle's default); BinauraError
    naming the form for another precision."""
    folder, _, precision = name[len(MODEL_PREFIX):].partition(":")
    if precision not in ("", "int4", "fp32"):
        raise BinauraError(f"--model {name!r}: expected bundle:DIR, bundle:DIR:int4 or bundle:DIR:fp32")
    return folder, precision or None


def as_bundle(bundle: Bundle | str | os.PathLike) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else read_bundle(bundle)


def check_program_bundle(bundle: Bundle) -> None:
    """Refuse a bundle whose language model does not write programs (a base LLM, a model that
    answers in sentences), naming what it holds."""
    if bundle.llm is None:
        raise BinauraError(f"{bundle.root}: the bundle has no language model (no llm section)")
    source = bundle.llm.meta.get("source") or {}
    if source.get("output") != PROGRAM_OUTPUT:
        what = (f"a model whose output is {source['output']!r}" if source.get("output")
                else "a base language model, not a program-aided one")
        raise BinauraError(f"{bundle.root}: the bundle's language model is {what}; the answering path runs a "
                           f"program-aided model: build one with `binaura export bundle --model default|PATH`")


def default_precision(bundle: Bundle) -> str:
    """int4 where the bundle has it (the edge's decoder), else fp32."""
    return "int4" if "int4" in bundle.llm.decoders else "fp32"


class BundleProgramWriter:
    """The bundle's decoder writing programs: question -> program text (greedy, deterministic,
    so each question is decoded once and remembered)."""

    def __init__(self, bundle: Bundle | str | os.PathLike, precision: str | None = None, threads: int = 1,
                 max_new_tokens: int = MAX_NEW_TOKENS):
        """precision: "int4" or "fp32" (None: default_precision). threads: ONNX Runtime's
        intra-op threads."""
        b = as_bundle(bundle)
        check_program_bundle(b)
        self.precision = precision or default_precision(b)
        self.decoder = OnnxDecoder.from_bundle(b, self.precision, threads)
        self.config = GenerationConfig(max_new_tokens=max_new_tokens)
        self.written: dict[str, str] = {}
        self.rewritten: dict[tuple[str, str], tuple[str, float]] = {}  # (question, task) -> write_with_tasks's
        self._lock = threading.Lock()

    def prompt_ids(self, question: str) -> list[int]:
        """The prompt's token ids: render_program's text, no audio slot."""
        p = render_program(question)
        return self.decoder.encode(p.before) + self.decoder.encode(p.after)

    def write(self, question: str) -> str:
        """The program text for one question, as the torch model decodes it (stripped)."""
        with self._lock:
            if question not in self.written:
                g = self.decoder.generate(self.decoder.embed(self.prompt_ids(question)), self.config)
                self.written[question] = g.text.strip()
            return self.written[question]


    def write_with_tasks(self, question: str, tasks: tuple[str, ...]) -> list[tuple[str, float]]:
        """Checked decoding's rewrites (agent.answer.programs.TaskWriter): for each task, the
        program decoded greedily after the task's name, and the sum of its tokens'
        log-probabilities (end-of-turn included). The prompt is run once; each task continues
        from its cache."""
        with self._lock:
            todo = [t for t in tasks if (question, t) not in self.rewritten]
            if todo:
                d = self.decoder
                logits, cache = d.forward(d.embed(self.prompt_ids(question)), d.empty_cache())
                for task in todo:
                    self.rewritten[(question, task)] = self._continue(logits[-1], cache, d.encode(task))
            return [self.rewritten[(question, t)] for t in tasks]

    def _continue(self, step: np.ndarray, cache: list, forced: list[int]) -> tuple[str, float]:
        d, tokens, logp = self.decoder, [], 0.0
        while len(tokens) < self.config.max_new_tokens:
            lsm = step - step.max()
            lsm = lsm - np.log(np.exp(lsm).sum())
            tok = forced[len(tokens)] if len(tokens) < len(forced) else int(np.argmax(step))
            logp += float(lsm[tok])
            if tok in d.stop_ids:
                break
            tokens.append(tok)
            logits, cache = d.forward(d.embed([tok]), cache)
            step = logits[-1]
        return " ".join(d.tokenizer.decode(tokens).split()), logp


class BundleAnswerer(ProgramAnswering):
    """An Answerer over clips (as training/eval/program_answerer.ProgramAnswerer) on a bundle:
    its decoder writes the programs and, unless `hear` is given, its encoder hears the clip.
    fallback: for an open question no program asks (default: the tracks' answer over the heard
    sources; None: every question goes through its program, as in `bench qa`)."""

    def __init__(self, bundle: Bundle | str | os.PathLike, precision: str | None = None, threads: int = 1,
                 hear: Hearing | None = None, name: str | None = None, fallback: Fallback | None = tracks_reply):
        b = as_bundle(bundle)
        self.bundle = b
        self.writer = BundleProgramWriter(b, precision, threads)
        if hear is None:
            if b.encoder is None:
                raise BinauraError(f"{b.root}: the bundle holds no encoder to hear the clip with; build it with "
                                   f"`binaura export bundle`")
            from agent.answer.hearing import encoder_hearing  # noqa: PLC0415 (agent.localize, loaded only here)

            hear = encoder_hearing(b.encoder, threads=threads)
        super().__init__(hear, name or f"bundle:{b.root}:{self.writer.precision}", fallback)

    def write_programs(self, questions: list[str]) -> list[str]:
        return [self.writer.write(q) for q in questions]

    def write_with_tasks(self, question: str, tasks: tuple[str, ...]) -> list[tuple[str, float]]:
        return self.writer.write_with_tasks(question, tasks)


class LiveBundleAnswerer(LiveProgramAnswering):
    """The live agent's answerer over a bundle (agent/answer/programs.py says what it does)."""

    def __init__(self, bundle: Bundle | str | os.PathLike, tracks, window_s: float = 5.0,
                 precision: str | None = None, threads: int = 1):
        b = as_bundle(bundle)
        self.writer = BundleProgramWriter(b, precision, threads)
        super().__init__(tracks, window_s, f"bundle:{b.root}:{self.writer.precision}")

    def write_program(self, question: str) -> str:
        return self.writer.write(question)

    def write_with_tasks(self, question: str, tasks: tuple[str, ...]) -> list[tuple[str, float]]:
        return self.writer.write_with_tasks(question, tasks)
