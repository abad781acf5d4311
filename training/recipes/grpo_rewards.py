"""Verifiable rewards for GRPO (issue 20, stage 4), computed from a QA item's metadata.

Each reward is a pure function `(item, completion_text, stopped) -> float` in [0, 1]:
- `correctness`: 1.0 when training.qa.score.is_correct accepts the reply (the scorer the
  benchmark uses, so the reward and the figure cannot disagree), else 0.0.
- `partial_credit`: for open numeric answers only. Directions ("deg") and turns: the cosine
  of the angular error, clipped at 0 (90 deg or more off earns nothing); azimuths wrap
  (-170 vs 170 is 20 deg off), `*_angle_between` answers (0-180 deg) use the plain
  difference. Distances ("m"): exp(-|error| / distance_scale_m).
- `format_reward`: the reply looks like the answers SFT taught and stopped on its own (the
  end-of-turn token came before the token limit). A choice item: one option letter of the
  item, ". ", one sentence, and no other option letter. An open item: one sentence, holding
  exactly one number when the answer is a number.

`completion_text` is the completion up to (not including) the end-of-turn token, decoded
without special tokens; `stopped` says whether that token was generated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from agent.core.errors import BinauraError
from agent.core.geometry import azimuth_diff_deg
from agent.core.scene import OPTION_LETTERS, QAItem, option_index
from training.qa.score import is_correct, parse_choice, parse_number, parse_turn

#: Answer types whose canonical answer is a number (agent/qa/tasks.py).
NUMERIC_TYPES = ("deg", "m", "turn")
DISTANCE_SCALE_M = 1.0

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")  # what training.qa.score reads as a number
_CHOICE_REPLY = re.compile(rf"([{OPTION_LETTERS}])\. (\S.*)")
_WORD = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True)
class RewardConfig:
    """The reward is w_correct * correctness + w_partial * partial_credit + w_format * format
    (a program-aided model's: w_correct * correct + w_exact * exact + w_format * format;
    training/recipes/grpo_programs.py)."""

    w_correct: float = 1.0
    w_partial: float = 0.5
    w_format: float = 0.2
    w_exact: float = 0.5  # program-aided models only: the reference program exactly
    distance_scale_m: float = DISTANCE_SCALE_M  # a distance this far off earns exp(-1) of the credit

    def problems(self) -> list[str]:
        p = [f"{k} must be >= 0, got {getattr(self, k)}" for k in ("w_correct", "w_partial", "w_format", "w_exact")
             if getattr(self, k) < 0]
        if self.distance_scale_m <= 0:
            p.append(f"distance_scale_m must be > 0, got {self.distance_scale_m}")
        return p

    def validate(self) -> RewardConfig:
        if self.problems():
            raise BinauraError("reward config: " + "; ".join(self.problems()))
        return self


def answer_type(item: QAItem) -> str:
    return item.extra.get("answer_type", "choice" if item.options else "label")


def correctness(item: QAItem, completion_text: str, stopped: bool) -> float:
    """1.0 when the benchmark's scorer accepts the reply, else 0.0 (`stopped` is the format's concern)."""
    return 1.0 if is_correct(item, completion_text) else 0.0


def direction_credit(error_deg: float) -> float:
    """cos(error), clipped at 0; errors beyond 180 deg count as 180."""
    return max(0.0, math.cos(math.radians(min(abs(error_deg), 180.0))))


def partial_credit(item: QAItem, completion_text: str, stopped: bool,
                   distance_scale_m: float = DISTANCE_SCALE_M) -> float:
    """Credit for being close on an open numeric answer (see the module doc); 0.0 for the rest."""
    kind = answer_type(item)
    if item.options or kind not in NUMERIC_TYPES:
        return 0.0
    if kind == "turn":
        got, want = parse_turn(completion_text), parse_turn(item.answer)
    else:
        got, want = parse_number(completion_text), parse_number(item.answer)
    if got is None or want is None:
        return 0.0
    if kind == "m":
        return math.exp(-abs(got - want) / distance_scale_m)
    if kind == "deg" and item.task.endswith("angle_between"):
        return direction_credit(got - want)
    return direction_credit(float(azimuth_diff_deg(got, want)))


def _is_sentence(text: str) -> bool:
    """One line, at least two words, ending like a sentence, no chat markup left in it."""
    return ("\n" not in text and "<|" not in text and len(_WORD.findall(text)) >= 2
            and text.rstrip().endswith((".", "!", "?")))


def format_reward(item: QAItem, completion_text: str, stopped: bool) -> float:
    """1.0 for a well-formed reply that ended its turn, else 0.0 (see the module doc)."""
    text = completion_text.strip()
    if not stopped or not text:
        return 0.0
    if item.options:
        m = _CHOICE_REPLY.fullmatch(text)
        if m is None or option_index(m.group(1)) >= len(item.options):
            return 0.0
        # the scorer reads the letters a reply names: any other letter makes it ambiguous
        if parse_choice(item, text) != m.group(1):
            return 0.0
        return 1.0 if _is_sentence(m.group(2)) else 0.0
    if _CHOICE_REPLY.match(text) or not _is_sentence(text):
        return 0.0
    if answer_type(item) in NUMERIC_TYPES:
        return 1.0 if len(_NUMBER.findall(text)) == 1 else 0.0
    return 1.0


def reward_parts(item: QAItem, completion_text: str, stopped: bool,
                 cfg: RewardConfig | None = None) -> dict[str, float]:
    """Each reward, unweighted."""
    cfg = cfg or RewardConfig()
    return {"correct": correctness(item, completion_text, stopped),
            "partial": partial_credit(item, completion_text, stopped, cfg.distance_scale_m),
            "format": format_reward(item, completion_text, stopped)}


def total_reward(item: QAItem, completion_text: str, stopped: bool, cfg: RewardConfig | None = None) -> float:
    """The weighted sum GRPO maximises."""
    cfg = cfg or RewardConfig()
    r = reward_parts(item, completion_text, stopped, cfg)
    return cfg.w_correct * r["correct"] + cfg.w_partial * r["partial"] + cfg.w_format * r["format"]


@dataclass(frozen=True)
class AnswerRewards:
    """The rewards of a model that answers in sentences (this module's functions), in the shape
    the GRPO loop asks of every reward (ProgramRewards has the same three methods)."""

    cfg: RewardConfig

    def parts(self, item: QAItem, completion_text: str, stopped: bool) -> dict[str, float]:
        return reward_parts(item, completion_text, stopped, self.cfg)

    def total(self, item: QAItem, completion_text: str, stopped: bool) -> float:
        return total_reward(item, completion_text, stopped, self.cfg)

    def correct(self, item: QAItem, completion_text: str) -> bool:
        return is_correct(item, completion_text)


__all__ = ["NUMERIC_TYPES", "AnswerRewards", "RewardConfig", "correctness", "direction_credit", "format_reward",
           "partial_credit", "reward_parts", "total_reward"]
