"""Stages 2 and 3 of the curriculum: projector alignment, then LoRA + projector SFT.

Both run on transformers' Trainer (so `accelerate launch` / torchrun scale them to several
processes or GPUs unchanged) with the model's own collator, which pads and masks the prompt
(loss on the answer only). Checkpoints hold only what trains (projector + LoRA, safetensors):
`_LalmTrainer` replaces the Trainer's whole-model save and load with `save_lalm`'s.

A run folder holds `model/` (the final checkpoint, a `binaura ask --model` argument),
`checkpoints/` (the Trainer's resumable ones), `history.json` and `loss.png`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agent.core.dataset import read_dataset, write_json
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from training.models.lalm import (
    LalmConfig,
    SpatialLALM,
    load_lalm,
    load_trainable,
    read_lalm_meta,
    save_lalm,
)
from training.models.llm import load_base_llm
from training.recipes.lalm_cache import EncoderCache
from training.recipes.lalm_data import STAGES, ExampleDataset, build_examples


@dataclass
class LalmTrainConfig:
    stage: str = "sft"
    steps: int = 400
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    val_clips: int = 40  # clips (all their questions) held out for the validation loss
    eval_every: int = 100
    seed: int = 0
    threads: int = 0  # torch threads (0: as torch chooses)
    rename: bool = False  # parse stage: also ask each question with other names for its classes
    rewordings: bool = False  # parse stage: also ask each question in an extra wording (training/qa/rewording.py)
    device: str = "auto"

    def validate(self) -> LalmTrainConfig:
        p = []
        if self.stage not in STAGES:
            p.append(f"stage must be one of {STAGES}, got {self.stage!r}")
        for k in ("steps", "batch_size", "grad_accum", "eval_every"):
            if getattr(self, k) < 1:
                p.append(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.lr <= 0:
            p.append(f"lr must be > 0, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            p.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if p:
            raise BinauraError("training config: " + "; ".join(p))
        return self


def _trainer_class():
    from transformers import Trainer  # noqa: PLC0415

    class _LalmTrainer(Trainer):
        """Saves and restores the projector and LoRA weights only (never the frozen base)."""

        def _save(self, output_dir=None, state_dict=None):
            out = Path(output_dir or self.args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            save_lalm(self.model, out / "lalm")

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            load_trainable(self.model, Path(resume_from_checkpoint) / "lalm")

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model(**inputs)
            return (out.loss, out) if return_outputs else out.loss

    return _LalmTrainer


def _split(ds, val_clips: int, seed: int) -> tuple[set[str], set[str]]:
    ids = sorted(s.id for s in ds.scenes)
    rng = np.random.default_rng(seed)
    val = set(rng.choice(ids, size=min(val_clips, max(0, len(ids) - 1)), replace=False).tolist()) if val_clips else set()
    return set(ids) - val, val


def train_lalm(data: str | os.PathLike, cache_dir: str | os.PathLike | None, out: str | os.PathLike,
               cfg: LalmTrainConfig, model_cfg: LalmConfig | None = None, init: str | os.PathLike | None = None,
               resume: bool = False, progress: bool = True) -> Path:
    """Train one stage; returns the final checkpoint folder (OUT/model).
    init: an earlier stage's checkpoint whose projector (and LoRA) start this one (align -> sft).
    cache_dir: the encoder-output cache; unused (may be None) for the parse stage."""
    from transformers import TrainingArguments  # noqa: PLC0415

    cfg.validate()
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model_cfg = dataclasses.replace(model_cfg or LalmConfig())
    if init is not None:
        init_meta = read_lalm_meta(init)
        model_cfg.projector = LalmConfig.from_dict(init_meta["config"]).projector
    if cfg.stage == "align":
        model_cfg.lora_r = 0  # the projector alone learns to speak the LLM's language
    if cfg.stage == "parse":
        model_cfg = dataclasses.replace(model_cfg, output="program", audio_tokens=False, heard_line=False)
    cache = EncoderCache.open(cache_dir) if model_cfg.audio_tokens or model_cfg.heard_line else None
    if cache is not None:
        if cache.meta.get("audio_input", "binaural") != model_cfg.audio_input:
            raise BinauraError(f"{cache_dir}: encoder outputs of {cache.meta.get('audio_input', 'binaural')} audio; "
                               f"the model is configured for {model_cfg.audio_input}")
        model_cfg.projector = dataclasses.replace(model_cfg.projector, spatial_dim=cache.meta["spatial_dim"],
                                                  semantic_dim=cache.meta["semantic_dim"],
                                                  seld_dim=cache.meta["seld_dim"])
    llm, tok = load_base_llm(model_cfg.base)
    model = SpatialLALM(llm, tok, model_cfg)
    if init is not None:
        load_trainable(model, init)
    ds = read_dataset(data, check_audio=False)
    train_ids, val_ids = _split(ds, cfg.val_clips, cfg.seed)
    examples = build_examples(ds, cache, cfg.stage, heard=model_cfg.heard_line, seed=cfg.seed, rename=cfg.rename,
                              rewordings=cfg.rewordings)
    train = [e for e in examples if e.scene_id in train_ids]
    val = [e for e in examples if e.scene_id in val_ids][:400]
    if not train:
        raise BinauraError(f"{data}: no training examples for stage {cfg.stage}")
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        lr_scheduler_type="cosine", logging_steps=max(1, min(10, cfg.eval_every)),
        eval_strategy="steps" if val else "no", eval_steps=cfg.eval_every, save_strategy="steps",
        save_steps=cfg.eval_every, save_total_limit=1, report_to=[], remove_unused_columns=False,
        dataloader_num_workers=0, seed=cfg.seed, use_cpu=not cuda, disable_tqdm=not progress)
    trainer = _trainer_class()(model=model, args=args, train_dataset=ExampleDataset(model, cache, train),
                               eval_dataset=ExampleDataset(model, cache, val) if val else None,
                               data_collator=model.collate)
    last = None
    if resume:
        ckpts = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        last = str(ckpts[-1]) if ckpts else None
        if last is None:
            raise BinauraError(f"--resume: {out / 'checkpoints'} holds no checkpoint to continue")
    trainer.train(resume_from_checkpoint=last)
    if not trainer.is_world_process_zero():
        return out / "model"
    history = [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in trainer.state.log_history]
    write_json(out / "history.json", history)
    plot_loss(history, out / "loss.png", f"{cfg.stage} ({model_cfg.projector.fusion} fusion)")
    meta = {"stage": cfg.stage, "train_config": dataclasses.asdict(cfg), "data": str(Path(data).resolve()),
            # a program-aided model reads no encoder output: it runs on whichever encoder hears
            "encoder_checkpoint_sha256": cache.meta["encoder_checkpoint_sha256"] if cache else None,
            "encoder_mirror_tta": cache.meta["mirror_tta"] if cache else None,
            "labels": cache.meta["labels"] if cache else list(LABELS),
            "train_examples": len(train), "val_examples": len(val), "world_size": args.world_size,
            "lineage": ([json.loads((Path(init) / "lalm.json").read_text()).get("stage")] if init else [])}
    save_lalm(model, out / "model", **meta)
    return out / "model"


def plot_loss(history: list[dict], path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4))
    tr = [h for h in history if "loss" in h and "step" in h]
    ev = [h for h in history if "eval_loss" in h]
    ax.plot([h["step"] for h in tr], [h["loss"] for h in tr], label="train loss")
    if ev:
        ax.plot([h["step"] for h in ev], [h["eval_loss"] for h in ev], "k--o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per answer token")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


__all__ = ["LalmTrainConfig", "load_lalm", "plot_loss", "train_lalm"]
