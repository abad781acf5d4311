"""`binaura train grpo`: stage 4 of the audio-language model's curriculum (training/recipes/grpo.py)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from agent.core.errors import BinauraError


def _levels(text: str) -> dict[str, float]:
    """'L1=0.2,L2=0.2,L3=0.6' -> {'L1': 0.2, ...}."""
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise BinauraError(f"--levels {text!r}: expected LEVEL=WEIGHT pairs, e.g. L1=0.2,L2=0.2,L3=0.6") from None
    return out


def cmd_train_grpo(args) -> int:
    from export.lalm_cli import _cache_for, model_folder  # noqa: PLC0415
    from training.recipes.distributed import init_distributed  # noqa: PLC0415
    from training.recipes.grpo import GrpoConfig, train_grpo  # noqa: PLC0415
    from training.recipes.grpo_rewards import RewardConfig  # noqa: PLC0415

    init = model_folder(args.init)
    if init is None:
        raise BinauraError(f"--init {args.init}: not a binaura language-model folder (no lalm.json); pass the SFT "
                           f"run's model/ folder")
    overrides = {k: v for k, v in (
        ("steps", args.steps), ("prompts_per_step", args.prompts), ("group_size", args.group_size),
        ("beta", args.beta), ("lr", args.lr), ("max_new_tokens", args.max_new_tokens),
        ("temperature", args.temperature), ("top_p", args.top_p), ("loss_type", args.loss_type),
        ("eval_every", args.eval_every), ("eval_prompts", args.eval_prompts), ("seed", args.seed),
        ("threads", args.threads), ("device", args.device)) if v is not None}
    if args.levels:
        overrides["level_weights"] = _levels(args.levels)
    weights = {k: v for k, v in (("w_correct", args.w_correct), ("w_partial", args.w_partial),
                                 ("w_format", args.w_format), ("w_exact", args.w_exact)) if v is not None}
    if args.wordings:
        overrides["wordings"] = args.wordings
    cfg = dataclasses.replace(GrpoConfig(), rewards=RewardConfig(**weights), **overrides).validate()
    from training.models.lalm import read_lalm_meta  # noqa: PLC0415

    if not (Path(args.data) / "scenes.jsonl").exists():
        raise BinauraError(f"--data {args.data}: no scenes.jsonl; GRPO trains on an existing dataset with qa.jsonl")
    config = read_lalm_meta(init)["config"]
    program = config.get("output") == "program"
    if args.wordings and not program:
        raise BinauraError(f"--wordings: the parse stage's questions, for a program-aided --init; "
                           f"{args.init} answers in sentences")
    # the cache must hold what the model hears: binaural, or the L+R average for a mono baseline
    args.scenes, args.mono = None, config.get("audio_input") == "mono"
    dist = init_distributed(cfg.device)  # under `accelerate launch`: one process of several
    cache = None
    if not program:  # a program-aided model reads the question alone
        with dist.main_first():  # a missing cache is built once, by rank 0; the others then find it
            cache = _cache_for(args)
    t0 = time.perf_counter()
    model = train_grpo(args.data, cache, args.out, cfg, init, resume=args.resume, progress=not args.quiet)
    if dist.is_main:
        print(f"grpo: {time.perf_counter() - t0:.0f} s on {dist.world_size} process(es); model -> {model}; "
              f"curves -> {Path(args.out) / 'loss.png'}")
    return 0


def add_grpo_parser(t) -> None:
    """`train grpo` under the `train` subcommand (t: its subparsers)."""
    s = t.add_parser("grpo", help="stage 4: GRPO with verifiable rewards from the scene metadata (after sft)")
    s.add_argument("--data", required=True, help="training dataset with qa.jsonl")
    s.add_argument("--init", required=True, help="the SFT run's model folder (or the run folder), or a "
                   "program-aided parser's (`train parse`; then no cache: its rewards judge programs on the truth)")
    s.add_argument("--out", required=True, help="run folder: model/, checkpoints/, history.json, loss.png")
    s.add_argument("--cache", help="encoder-output cache (default: DATA/encoder-outputs, built when missing)")
    s.add_argument("--encoder", help="encoder checkpoint for a missing cache (default: the shipped one)")
    s.add_argument("--steps", type=int, help="optimizer steps (default 200)")
    s.add_argument("--prompts", type=int, help="questions per step and process (default 4)")
    s.add_argument("--group-size", type=int, help="completions sampled per question (default 8)")
    s.add_argument("--beta", type=float, help="KL coefficient to the SFT model (default 0.04)")
    s.add_argument("--lr", type=float, help="learning rate (default 2e-5)")
    s.add_argument("--max-new-tokens", type=int, help="completion length limit (default 32)")
    s.add_argument("--temperature", type=float, help="sampling temperature (default 1.0)")
    s.add_argument("--top-p", type=float)
    s.add_argument("--loss-type", choices=("grpo", "bnpo", "dapo"), help="trl's loss aggregation (default grpo)")
    s.add_argument("--levels", help="share of questions per level (default L1=0.2,L2=0.2,L3=0.6)")
    s.add_argument("--w-correct", type=float, help="reward weight of a correct answer (default 1.0)")
    s.add_argument("--w-partial", type=float, help="reward weight of closeness on open answers (default 0.5)")
    s.add_argument("--w-format", type=float, help="reward weight of a well-formed reply (default 0.2)")
    s.add_argument("--w-exact", type=float, help="program-aided: reward weight of the reference program (default 0.5)")
    s.add_argument("--wordings", choices=("seen", "renamed", "reworded", "all"),
                   help="program-aided: which questions prompt it: the dataset's (default), with other class "
                        "names too, the training-only wordings alone, or all")
    s.add_argument("--eval-every", type=int, help="held-out eval, checkpoint and plot every N steps (default 25)")
    s.add_argument("--eval-prompts", type=int, help="held-out questions answered greedily at each eval (default 32)")
    s.add_argument("--seed", type=int)
    s.add_argument("--threads", type=int, help="torch threads (default: as torch chooses)")
    s.add_argument("--device", choices=("auto", "cpu", "cuda"))
    s.add_argument("--resume", action="store_true", help="continue OUT/checkpoints")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train_grpo)
