"""Stage 4 of the curriculum: GRPO on the QA items with verifiable rewards (grpo_rewards.py).

trl's GRPOTrainer generates from token ids and cannot put the projector's audio embeddings
in the prompt, so the loop is written here and follows trl 1.16's objective exactly for
`importance_sampling_level="token"`, `num_iterations=1`, `scale_rewards="group"` (a test
checks `grpo_loss` against `GRPOTrainer._compute_loss` on a text-only model):
- the objective (group-normalised advantages, clipped ratio, KL to the reference, the loss
  aggregations) is training/recipes/grpo_objective.py, trl's to the decimal;
- G completions per prompt, sampled (temperature, top_p, no top-k) until the end-of-turn
  token or `max_new_tokens`, scored by the model's rewards (grpo_rewards.py for replies,
  grpo_programs.py for a program-aided parser's programs).

The reference model is the init checkpoint itself, frozen: its LoRA weights as the peft
adapter "ref" (trl's own convention when re-training an existing adapter) and a frozen copy
of its projector. Disabling the adapter instead would measure the KL to the base LLM that
never learned the answer format, which SFT moved away from on purpose.

Dropout stays off throughout (trl's `disable_dropout=True`). Resumable: OUT/checkpoints
holds the fp32 trainable weights, AdamW's moments and the history every `eval_every`
steps; every step reseeds from (seed, step, rank), so a resumed run repeats an uninterrupted
one (with the same number of processes).

Several processes (`accelerate launch --multi_gpu --num_processes N -m export.cli train grpo
...`, or torchrun; training/recipes/distributed.py): each rank draws its own
`prompts_per_step` questions per step (rank 0 the ones a plain process draws) and samples
their G completions itself, so each group's advantages are the one-process ones; the
trainable gradients (LoRA and projector) are averaged over the ranks before the clip and
the AdamW step, so every rank keeps the same weights; N processes train on N x
prompts_per_step questions a step. The reference adapter and projector are frozen copies
on every rank. The logged loss, rewards and KL are over all ranks' samples; the held-out
eval is shared out among the ranks. Rank 0 alone writes the checkpoints, history, plot and
model (which records `world_size`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from agent.core.dataset import read_dataset, write_json
from agent.core.errors import BinauraError
from agent.core.outdir import OutputKind, output_folder
from agent.core.scene import QA_LEVELS, QAItem
from training.models.lalm import SpatialLALM, load_lalm, save_lalm
from training.recipes.distributed import Dist, init_distributed, rank_seed, seed_int
from training.recipes.grpo_objective import (
    LOSS_TYPES,
    completion_mask,
    group_advantages,
    grpo_loss,
    per_token_kl,
    token_logps,
)
from training.recipes.grpo_programs import WORDINGS, ProgramRewards, program_questions
from training.recipes.grpo_rewards import AnswerRewards, RewardConfig
from training.recipes.lalm_cache import EncoderCache
from training.recipes.lalm_data import (
    Example,
    ExampleDataset,
    build_examples,
    parse_example,
)

STATE_KIND = OutputKind("grpo-state", manifest="state.json", names=("state.safetensors",))
STATE_FORMAT = "binaura-grpo-state-v1"
REF_ADAPTER = "ref"
#: Config fields a resumed run may change.
RESUMABLE_CHANGES = ("steps", "eval_every", "threads", "device")

RewardFn = Callable[[QAItem, str, bool], float]


@dataclass
class GrpoConfig:
    steps: int = 200
    prompts_per_step: int = 4  # per process: N processes train on N x this a step
    group_size: int = 8  # completions per prompt (trl: num_generations)
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    lr: float = 2e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    beta: float = 0.04  # KL coefficient
    epsilon: float = 0.2  # lower clip (trl: epsilon)
    epsilon_high: float | None = None  # upper clip; None: epsilon
    loss_type: str = "grpo"
    bias_correction_kl: bool = True  # trl 1.16's use_bias_correction_kl default
    #: share of prompts drawn from each QA level (the paper's GRPO stage targets L3 reasoning)
    level_weights: dict[str, float] = field(default_factory=lambda: {"L1": 0.2, "L2": 0.2, "L3": 0.6})
    rewards: RewardConfig = field(default_factory=RewardConfig)
    #: a program-aided model's prompts (grpo_programs.WORDINGS): the dataset's own questions ("seen"),
    #: with other class names too ("renamed"), its training-only wordings alone ("reworded"), or all
    wordings: str = "seen"
    val_clips: int = 20  # clips held out of training; the greedy eval draws from their questions
    eval_prompts: int = 32  # 0: no eval
    eval_every: int = 25  # eval, checkpoint and plot this often
    seed: int = 0
    threads: int = 0
    device: str = "auto"

    @property
    def epsilon_upper(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    def validate(self) -> GrpoConfig:
        p = [f"{k} must be >= 1, got {getattr(self, k)}" for k in
             ("steps", "prompts_per_step", "max_new_tokens", "eval_every") if getattr(self, k) < 1]
        if self.group_size < 2:
            p.append(f"group_size must be >= 2 (advantages compare completions of one prompt), got {self.group_size}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            p.append(f"temperature must be > 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if self.lr <= 0 or self.beta < 0 or self.epsilon <= 0 or self.epsilon_upper <= 0:
            p.append(f"lr and epsilon(s) must be > 0 and beta >= 0, got lr {self.lr}, beta {self.beta}, "
                     f"epsilon {self.epsilon}, epsilon_high {self.epsilon_high}")
        if self.loss_type not in LOSS_TYPES:
            p.append(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        bad = {k: v for k, v in self.level_weights.items() if k not in QA_LEVELS or v < 0}
        if bad or sum(self.level_weights.values()) <= 0:
            p.append(f"level_weights: levels {QA_LEVELS}, weights >= 0, not all 0; got {self.level_weights}")
        if self.wordings not in WORDINGS:
            p.append(f"wordings must be one of {WORDINGS}, got {self.wordings!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            p.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        p += self.rewards.problems()
        if p:
            raise BinauraError("GRPO config: " + "; ".join(p))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def completion_logps(model: SpatialLALM, batch: dict, completion_ids: torch.Tensor, mask: torch.Tensor,
                     temperature: float = 1.0) -> torch.Tensor:
    """token_logps for a left-padded prompt batch (SpatialLALM.collate) and its completions."""
    ids = torch.cat([batch["input_ids"], completion_ids], 1)
    audio = torch.cat([batch["audio_mask"], torch.zeros_like(completion_ids, dtype=torch.bool)], 1)
    emb = model.embed(ids, audio, batch.get("spatial"), batch.get("semantic"), batch.get("seld"))
    attn = torch.cat([batch["attention_mask"], mask.to(batch["attention_mask"].dtype)], 1)
    return token_logps(model.llm, emb, attn, completion_ids, mask, temperature)


@torch.no_grad()
def sample_completions(model: SpatialLALM, batch: dict, max_new_tokens: int, temperature: float = 1.0,
                       top_p: float = 1.0, do_sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Completions of a left-padded prompt batch -> (ids (B, T <= max_new_tokens), stopped (B,) bool:
    the end-of-turn token came before the limit). Sampling as trl's: temperature, top_p, no top-k."""
    from transformers import GenerationConfig  # noqa: PLC0415

    emb = model.embed(batch["input_ids"], batch["audio_mask"], batch.get("spatial"), batch.get("semantic"),
                      batch.get("seld"))
    sampling = {"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}
    gen = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=model.stop_id,
                           pad_token_id=model.tokenizer.pad_token_id, repetition_penalty=1.0, **sampling)
    ids = model.llm.generate(inputs_embeds=emb, attention_mask=batch["attention_mask"], generation_config=gen)
    return ids, (ids == model.stop_id).any(1)


def completion_texts(model: SpatialLALM, ids: torch.Tensor, mask: torch.Tensor, stopped: torch.Tensor) -> list[str]:
    """Each completion before its end-of-turn, decoded without special tokens."""
    lengths = mask.sum(1) - stopped.int()
    return [model.tokenizer.decode(row[:n].tolist(), skip_special_tokens=True).strip()
            for row, n in zip(ids, lengths.tolist())]


@contextmanager
def as_reference(model: SpatialLALM, ref_projector):
    """The model acts as the reference inside: the init's LoRA (adapter "ref", or none) and projector."""
    saved = model.projector
    model.projector = ref_projector
    try:
        if REF_ADAPTER in getattr(model.llm, "peft_config", {}):
            model.llm.set_adapter(REF_ADAPTER, inference_mode=True)
            try:
                yield model
            finally:
                model.llm.set_adapter("default")
        else:
            with model.llm.disable_adapter():
                yield model
    finally:
        model.projector = saved


# -- the loop -----------------------------------------------------------------------------------
def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def add_reference_adapter(model: SpatialLALM) -> None:
    """Copy the current LoRA weights into a frozen peft adapter "ref"; "default" stays active and
    trainable. Leaves the model in eval mode (new adapter modules start in training mode: dropout)."""
    import copy  # noqa: PLC0415

    from peft import get_peft_model_state_dict, set_peft_model_state_dict  # noqa: PLC0415

    llm = model.llm
    state = get_peft_model_state_dict(llm, adapter_name="default")
    llm.add_adapter(REF_ADAPTER, copy.deepcopy(llm.peft_config["default"]))
    set_peft_model_state_dict(llm, state, adapter_name=REF_ADAPTER)
    llm.set_adapter("default")
    for name, p in llm.named_parameters():
        p.requires_grad_(".default." in name)
    model.eval()


def _open_inputs(cache_dir, init: Path) -> tuple[SpatialLALM, dict, EncoderCache | None]:
    """The init model and, for a model that hears (not a program-aided one), its encoder cache."""
    model, meta = load_lalm(init)
    if model.cfg.lora_r == 0:
        raise BinauraError(f"--init {init}: a {meta.get('stage')!r} checkpoint without LoRA; GRPO starts from an "
                           f"SFT model (`binaura train sft --init ALIGN_RUN/model`) or a parser "
                           f"(`binaura train parse`)")
    if model.cfg.output == "program":
        return model, meta, None  # it reads the question alone
    if cache_dir is None:
        raise BinauraError(f"--init {init} hears the audio: GRPO needs its encoder-output cache")
    cache = EncoderCache.open(cache_dir)
    problems = []
    if cache.meta.get("audio_input", "binaural") != model.cfg.audio_input:
        problems.append(f"the cache holds encoder outputs of {cache.meta.get('audio_input', 'binaural')} audio, "
                        f"the model reads {model.cfg.audio_input}")
    sha = meta.get("encoder_checkpoint_sha256")
    if sha and sha != cache.meta["encoder_checkpoint_sha256"]:
        problems.append(f"the model was trained on encoder {sha[:12]}, the cache comes from "
                        f"{cache.meta['encoder_checkpoint_sha256'][:12]}")
    if problems:
        raise BinauraError(f"{cache_dir} does not fit --init {init}: " + "; ".join(problems))
    return model, meta, cache


def _val_clip_ids(ids: list[str], val_clips: int, seed: int) -> set[str]:
    ids = sorted(ids)
    k = min(val_clips, max(0, len(ids) - 1))
    return set(np.random.default_rng(seed).choice(ids, size=k, replace=False).tolist()) if k else set()


def draw_prompts(by_level: dict[str, list[int]], weights: dict[str, float], n: int,
                 rng: np.random.Generator) -> list[int]:
    """n prompt indices: a level by its weight (among levels that have prompts), then a prompt in it."""
    levels = [lv for lv in QA_LEVELS if by_level.get(lv) and weights.get(lv, 0.0) > 0]
    if not levels:
        raise BinauraError(f"no training question of the weighted levels {weights}")
    p = np.array([weights[lv] for lv in levels], dtype=float)
    picks = rng.choice(len(levels), size=n, p=p / p.sum())
    return [by_level[levels[k]][int(rng.integers(len(by_level[levels[k]])))] for k in picks]


def evaluate(model: SpatialLALM, qa: list[QAItem], prompts: ExampleDataset, idx: list[int], cfg: GrpoConfig,
             device: torch.device, chunk: int = 16, dist: Dist | None = None,
             judge: AnswerRewards | ProgramRewards | None = None) -> dict:
    """Greedy answers to held-out questions: accuracy (overall and per level) and mean reward
    (judge: what judges them; default the answer rewards of cfg.rewards). With several
    processes (dist) each rank answers every world_size-th question and every rank returns the
    figures over all of them."""
    dist = dist or Dist()
    judge = judge or AnswerRewards(cfg.rewards)
    mine = idx[dist.rank::dist.world_size]
    answered = []  # (correct, reward, level) per question
    for s in range(0, len(mine), chunk):
        part = mine[s:s + chunk]
        batch = _to(model.collate([prompts[i] for i in part], left_pad=True), device)
        ids, stopped = sample_completions(model, batch, cfg.max_new_tokens, do_sample=False)
        texts = completion_texts(model, ids, completion_mask(ids, model.stop_id), stopped)
        for i, text, stop in zip(part, texts, stopped.tolist()):
            answered.append((float(judge.correct(qa[i], text)), judge.total(qa[i], text, stop), qa[i].level))
    correct, rewards, levels = zip(*[a for rank in dist.gather(answered) for a in rank])
    out = {"eval_accuracy": float(np.mean(correct)), "eval_reward": float(np.mean(rewards))}
    for lv in QA_LEVELS:
        hits = [c for c, level in zip(correct, levels) if level == lv]
        if hits:
            out[f"eval_accuracy_{lv}"] = float(np.mean(hits))
    return out


def grpo_step(model: SpatialLALM, ref_projector, opt, params: list, qa: list[QAItem], prompts: ExampleDataset,
              idx: list[int], cfg: GrpoConfig, reward_fn: RewardFn, device: torch.device,
              dist: Dist | None = None, judge: AnswerRewards | ProgramRewards | None = None) -> dict:
    """Sample G completions for each prompt, score them, take one AdamW step; returns the step's stats.
    reward_fn gives the reward the step maximises; judge (default: the answer rewards of
    cfg.rewards) the parts it logs. With several processes (dist) idx are this rank's prompts,
    the gradients are averaged over the ranks before the step and the stats are over every
    rank's samples."""
    dist = dist or Dist()
    judge = judge or AnswerRewards(cfg.rewards)
    g = cfg.group_size
    encoded = [prompts[i] for i in idx]
    batch = _to(model.collate([e for e in encoded for _ in range(g)], left_pad=True), device)
    items = [qa[i] for i in idx for _ in range(g)]
    ids, stopped = sample_completions(model, batch, cfg.max_new_tokens, cfg.temperature, cfg.top_p)
    mask = completion_mask(ids, model.stop_id)
    texts = completion_texts(model, ids, mask, stopped)
    stops = stopped.tolist()
    rewards = torch.tensor([reward_fn(it, tx, s) for it, tx, s in zip(items, texts, stops)], dtype=torch.float32)
    parts = [judge.parts(it, tx, s) for it, tx, s in zip(items, texts, stops)]
    advantages = group_advantages(rewards, g).to(device)
    ref = None
    if cfg.beta != 0.0:
        with torch.no_grad(), as_reference(model, ref_projector):
            ref = completion_logps(model, batch, ids, mask, cfg.temperature)
    logps = completion_logps(model, batch, ids, mask, cfg.temperature)
    m = mask.float()
    # dapo: trl's normaliser, all ranks' completion tokens / processes (one process: this batch's)
    num_items = dist.sum(m.sum()) / dist.world_size if cfg.loss_type == "dapo" else None
    loss = grpo_loss(logps, logps.detach(), ref, advantages, mask, cfg.epsilon, cfg.epsilon_upper, cfg.beta,
                     cfg.loss_type, cfg.bias_correction_kl, num_items=num_items)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    dist.average_gradients(p for _, p in params)
    grad_norm = torch.nn.utils.clip_grad_norm_([p for _, p in params], cfg.max_grad_norm)
    opt.step()
    kl_sum = (per_token_kl(logps.detach(), ref) * m).sum() if ref is not None else torch.zeros(())
    mean = dist.mean({"loss": float(loss.detach()), "kl_sum": float(kl_sum), "tokens": float(m.sum()),
                      "completion_tokens": float(m.sum(1).mean()), "stopped": float(np.mean(stops)),
                      **{f"reward_{k}": float(np.mean([p[k] for p in parts])) for k in parts[0]}})
    every = torch.tensor([r for rank in dist.gather(rewards.tolist()) for r in rank])  # all ranks' rewards
    kl_sum, tokens = mean.pop("kl_sum"), mean.pop("tokens")
    return {"loss": mean.pop("loss"), "reward": float(every.mean()), "reward_std": float(every.std()),
            **{k: v for k, v in mean.items() if k.startswith("reward_")},
            "kl": kl_sum / max(tokens, 1.0), "grad_norm": float(grad_norm),
            "completion_tokens": mean["completion_tokens"], "stopped": mean["stopped"],
            "zero_std_groups": float((every.view(-1, g).std(1) == 0).float().mean())}


def _save_state(folder: Path, step: int, params: list, opt, history: list, cfg: GrpoConfig, init: Path,
                world_size: int = 1) -> None:
    from safetensors.torch import save_file  # noqa: PLC0415

    tensors = {}
    for i, (_, p) in enumerate(params):
        tensors[f"param.{i}"] = p.detach().to("cpu", torch.float32).contiguous()
        st = opt.state.get(p, {})
        for k in ("exp_avg", "exp_avg_sq"):
            if k in st:
                tensors[f"adam.{i}.{k}"] = st[k].detach().cpu().contiguous()
        if "step" in st:
            tensors[f"adam.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1).cpu()
    with output_folder(folder, STATE_KIND) as tmp:
        save_file(tensors, str(tmp / "state.safetensors"))
        write_json(tmp / "state.json", {"format": STATE_FORMAT, "step": step, "config": cfg.to_dict(),
                                        "init": str(init.resolve()), "params": [n for n, _ in params],
                                        "world_size": world_size, "history": history})


def _load_state(folder: Path, params: list, opt, cfg: GrpoConfig, init: Path) -> tuple[int, list]:
    from safetensors.torch import load_file  # noqa: PLC0415

    try:
        meta = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise BinauraError(f"--resume: {folder} holds no GRPO state to continue ({e})") from e
    now, then = cfg.to_dict(), meta.get("config", {})
    changed = [k for k in now if k not in RESUMABLE_CHANGES and now[k] != then.get(k)]
    if meta.get("format") != STATE_FORMAT or changed or meta.get("init") != str(init.resolve()) \
            or meta.get("params") != [n for n, _ in params]:
        raise BinauraError(f"--resume: {folder} was written by another GRPO run (format, --init, model or config "
                           f"differ{': ' + ', '.join(changed) if changed else ''}); only {RESUMABLE_CHANGES} may change")
    state = load_file(str(folder / "state.safetensors"))
    adam = {}
    with torch.no_grad():
        for i, (_, p) in enumerate(params):
            p.copy_(state[f"param.{i}"])
            if f"adam.{i}.step" in state:
                adam[i] = {"step": state[f"adam.{i}.step"].reshape(()),
                           "exp_avg": state[f"adam.{i}.exp_avg"], "exp_avg_sq": state[f"adam.{i}.exp_avg_sq"]}
    opt.load_state_dict({"state": adam, "param_groups": opt.state_dict()["param_groups"]})
    return int(meta["step"]), list(meta["history"])


def train_grpo(data: str | os.PathLike, cache_dir: str | os.PathLike | None, out: str | os.PathLike, cfg: GrpoConfig,
               init: str | os.PathLike, resume: bool = False, progress: bool = True,
               reward_fn: RewardFn | None = None) -> Path:
    """GRPO from an SFT checkpoint `init` (or a program-aided parser: its prompts are the parse
    stage's questions, its rewards grpo_programs', and it needs no cache_dir); returns OUT/model
    (also OUT/history.json, OUT/loss.png, OUT/checkpoints). reward_fn: (item, completion_text,
    stopped) -> reward; default the weighted sum of the model's rewards with cfg.rewards. Under
    `accelerate launch` / torchrun every rank calls it (module docstring); rank 0 writes the
    files, and every rank returns once they are written."""
    import copy  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    cfg.validate()
    out, init = Path(out), Path(init)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dist = init_distributed(cfg.device)
    device = dist.device
    model, init_meta, cache = _open_inputs(cache_dir, init)
    ref_projector = copy.deepcopy(model.projector).requires_grad_(False) if model.projector is not None else None
    add_reference_adapter(model)
    model.to(device).eval()  # dropout off: trl's disable_dropout
    if ref_projector is not None:
        ref_projector.to(device).eval()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([p for _, p in params], lr=cfg.lr, weight_decay=cfg.weight_decay)

    ds = read_dataset(data, check_audio=False)
    if model.cfg.output == "program":
        qa = program_questions(ds, cfg.wordings, cfg.seed)
        examples: list[Example] = [parse_example(q) for q in qa]
        judge = ProgramRewards(ds, cfg.rewards)
    else:
        examples = build_examples(ds, cache, "sft", heard=model.cfg.heard_line, seed=cfg.seed)
        qa = list(ds.qa)
        judge = AnswerRewards(cfg.rewards)
    reward_fn = reward_fn or judge.total
    val = _val_clip_ids([s.id for s in ds.scenes], cfg.val_clips, cfg.seed)
    train_idx = [i for i, q in enumerate(qa) if q.scene_id not in val]
    val_idx = [i for i, q in enumerate(qa) if q.scene_id in val]
    eval_idx = sorted(np.random.default_rng(cfg.seed).permutation(val_idx)[:cfg.eval_prompts].tolist())
    by_level = {lv: [i for i in train_idx if qa[i].level == lv] for lv in QA_LEVELS}
    prompts = ExampleDataset(model, cache, examples, with_target=False)

    dist.broadcast_parameters(p for _, p in params)  # every rank starts from rank 0's weights
    state_dir = out / "checkpoints"
    step, history = 0, []
    if resume:
        step, history = _load_state(state_dir, params, opt, cfg, init)
    elif eval_idx:
        history.append({"step": 0, **evaluate(model, qa, prompts, eval_idx, cfg, device, dist=dist, judge=judge)})
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, desc="grpo", unit="step",
               disable=not (progress and dist.is_main))
    for step in bar:
        t0 = time.perf_counter()
        # per-step seeds: a resumed run repeats the same samples; rank 0's are a plain process's
        torch.manual_seed(cfg.seed * 1_000_003 + step if dist.is_main
                          else seed_int(rank_seed(dist.rank, cfg.seed, step)))
        idx = draw_prompts(by_level, cfg.level_weights, cfg.prompts_per_step,
                           np.random.default_rng(rank_seed(dist.rank, cfg.seed, step)))
        stats = grpo_step(model, ref_projector, opt, params, qa, prompts, idx, cfg, reward_fn, device, dist=dist,
                          judge=judge)
        history.append({"step": step + 1, **stats, "seconds": time.perf_counter() - t0})
        bar.set_postfix(reward=f"{stats['reward']:.3f}", kl=f"{stats['kl']:.4f}")
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            if eval_idx:
                history.append({"step": done, **evaluate(model, qa, prompts, eval_idx, cfg, device, dist=dist, judge=judge)})
            if dist.is_main:
                _save_state(state_dir, done, params, opt, history, cfg, init, dist.world_size)
                out.mkdir(parents=True, exist_ok=True)
                write_json(out / "history.json", history)
                plot_grpo(history, out / "loss.png", f"GRPO ({cfg.loss_type}, G={cfg.group_size}, beta={cfg.beta})")
            dist.barrier()
    meta = {"stage": "grpo", "train_config": cfg.to_dict(), "data": str(Path(data).resolve()),
            "init": str(init.resolve()), "reference": "the init checkpoint (LoRA adapter 'ref', frozen projector)",
            "encoder_checkpoint_sha256": cache.meta["encoder_checkpoint_sha256"] if cache else None,
            "encoder_mirror_tta": cache.meta["mirror_tta"] if cache else None,
            "labels": cache.meta["labels"] if cache else init_meta.get("labels"),
            "train_questions": len(train_idx), "eval_questions": len(eval_idx), "world_size": dist.world_size,
            "lineage": [*init_meta.get("lineage", []), init_meta.get("stage")]}
    if dist.is_main:
        save_lalm(model, out / "model", **meta)
    dist.barrier()
    return out / "model"


def plot_grpo(history: list[dict], path: Path, title: str) -> None:
    """Reward (train, and held-out accuracy), KL to the reference and loss per step."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    tr = [h for h in history if "reward" in h]
    ev = [h for h in history if "eval_accuracy" in h]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    steps = [h["step"] for h in tr]
    axes[0].plot(steps, [h["reward"] for h in tr], alpha=0.5, label="mean reward (samples)")
    axes[0].plot(steps, [h["reward_correct"] for h in tr], alpha=0.5, label="correct (samples)")
    if ev:
        axes[0].plot([h["step"] for h in ev], [h["eval_accuracy"] for h in ev], "k--o", label="held-out accuracy")
    axes[0].legend(fontsize=8)
    axes[1].plot(steps, [h["kl"] for h in tr])
    axes[1].set_ylabel("KL to the reference (per token)")
    axes[2].plot(steps, [h["loss"] for h in tr])
    axes[2].set_ylabel("GRPO loss")
    for ax in axes:
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


__all__ = ["LOSS_TYPES", "GrpoConfig", "RewardConfig", "as_reference", "completion_logps", "completion_mask",
           "draw_prompts", "evaluate", "group_advantages", "grpo_loss", "per_token_kl", "plot_grpo",
           "sample_completions", "token_logps", "train_grpo"]
