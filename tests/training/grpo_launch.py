"""`binaura train grpo` exactly as the command line runs it, for test_grpo's two-process launch
(`accelerate launch ... -m tests.training.grpo_launch train grpo ...`), with two changes:

- the reward adds 0.01 per character: a random tiny model earns no real reward, and a group of
  equal rewards gives no gradient to average;
- after every step each rank appends its trainable weights' checksum, its prompts and the
  step's stats to OUT/rank{RANK}.jsonl, so the test can see that the ranks stayed in step.
"""

import json
import sys
from pathlib import Path

import training.recipes.grpo as grpo
from export.cli import main
from training.recipes.grpo_rewards import AnswerRewards

_total_reward, _grpo_step = AnswerRewards.total, grpo.grpo_step


def _reward(self, item, text, stopped):
    return _total_reward(self, item, text, stopped) + 0.01 * len(text)


def _logged_step(model, ref_projector, opt, params, qa, prompts, idx, *args, dist, **kwargs):
    stats = _grpo_step(model, ref_projector, opt, params, qa, prompts, idx, *args, dist=dist, **kwargs)
    out = Path(sys.argv[sys.argv.index("--out") + 1])
    with open(out / f"rank{dist.rank}.jsonl", "a") as f:
        f.write(json.dumps({"checksum": sum(float(p.detach().double().abs().sum()) for _, p in params),
                            "prompts": [int(i) for i in idx], "stats": stats}) + "\n")
    return stats


if __name__ == "__main__":
    AnswerRewards.total, grpo.grpo_step = _reward, _logged_step
    Path(sys.argv[sys.argv.index("--out") + 1]).mkdir(parents=True, exist_ok=True)
    sys.exit(main(sys.argv[1:]))
