"""GRPO for the program-aided model (docs/lalm.md, "GRPO on the programs"): verifiable rewards
for a program the parser samples, from the scene's metadata.

The program-aided model writes a question as a program (agent/qa/programs.py) and the answer
programs run it on what was heard. Its completion is a program, not a reply, so the rewards
judge the program on the truth:
- `correct`: the program, run on the scene as generated (its true sources), gives the item's
  answer (what `bench qa` counts as "right on the truth"). Any program that asks the same thing
  earns it: `sector a=dog` for "Is the dog behind me?" as well as the reference's claim form.
- `exact`: the program is the item's reference program (its task and parameters, written
  from the metadata): a yes/no question answered right by a program that asks something else
  is right by chance, and this term keeps such luck from being reinforced as much as a program
  that asks what was asked.
- `format`: the program ended its turn, parses, and fits its question (agent/qa/check.py:
  arguments its task takes, the options' kind, a sector or turn the question says).
No partial credit: a program off by a class gives another source's direction, which is no
closer to right for being near by chance.

The prompts are the parse stage's training questions (training/recipes/lalm_data.parse_items),
chosen by `wordings`: "seen" the dataset's own, "renamed" those and the ones asked with other
class names, "reworded" the training-only wordings alone, "all" every one. A group whose samples
all earn the same reward gives no gradient, so the wordings the SFT parser is least sure of
(the training-only ones: it writes the reference program for about three in four, against
every one of the questions it was trained on) are where GRPO can learn.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.dataset import Dataset
from agent.core.errors import BinauraError
from agent.core.scene import QAItem
from agent.qa.check import problems
from agent.qa.programs import parse_program, program_of, right_on_truth
from training.recipes.grpo_rewards import RewardConfig
from training.recipes.lalm_data import parse_items

WORDINGS = ("seen", "renamed", "reworded", "all")


def program_questions(ds: Dataset, wordings: str, seed: int = 0) -> list[QAItem]:
    """The questions GRPO draws its prompts from (the module doc)."""
    if wordings not in WORDINGS:
        raise BinauraError(f"wordings must be one of {WORDINGS}, got {wordings!r}")
    if wordings == "reworded":
        return parse_items(ds, seed, rewordings=True)[len(ds.qa):]
    return parse_items(ds, seed, rename=wordings in ("renamed", "all"), rewordings=wordings == "all")


@dataclass(frozen=True)
class ProgramRewards:
    """The rewards of a program-aided model's samples on one dataset (the module doc)."""

    ds: Dataset
    cfg: RewardConfig

    def parts(self, item: QAItem, text: str, stopped: bool) -> dict[str, float]:
        text = text.strip()
        fits = stopped and parse_program(text) is not None and not problems(text, item.question, item.options)
        return {"correct": float(right_on_truth(text, item, self.ds.by_id[item.scene_id])),
                "exact": float(text == program_of(item).text()),
                "format": float(fits)}

    def total(self, item: QAItem, text: str, stopped: bool) -> float:
        r = self.parts(item, text, stopped)
        return self.cfg.w_correct * r["correct"] + self.cfg.w_exact * r["exact"] + self.cfg.w_format * r["format"]

    def correct(self, item: QAItem, text: str) -> bool:
        return right_on_truth(text.strip(), item, self.ds.by_id[item.scene_id])


__all__ = ["WORDINGS", "ProgramRewards", "program_questions"]
