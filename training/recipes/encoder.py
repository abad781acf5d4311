"""Stage 1: multi-task SELD training of the joint encoder on cached scene features.

Losses (weights are config fields): activity cross-entropy; on active frames,
the squared error of the lateral sine and the cross-entropy of the polar angle
against Gaussian-smoothed bin targets (together with the activity they make the
ACCDOA output); log-distance squared error on active frames; and the semantic
branch's frame-wise class cross-entropy. The batches and their augmentation:
training/recipes/encoder_batches.py; a fine-tune that holds parts of the model still:
training/recipes/encoder_keep.py.

Everything a run needs to continue is in `last.pt`; `--resume` picks it up.

Several processes (`accelerate launch --multi_gpu --num_processes N -m export.cli train encoder
...`, or torchrun; training/recipes/distributed.py): the model trains in
DistributedDataParallel, so every rank takes the same AdamW step on gradients averaged over the
ranks; each rank draws its own batches of `batch_size` clips (its own random stream, rank 0's
that of a plain process), so a step sees N x batch_size clips. BatchNorm normalises each rank's
batch, and DDP hands rank 0's running statistics to the others at each forward. Rank 0 alone
validates, picks best.pt, tunes the decoding and writes the files (`world_size` recorded in
them); the logged training losses are averaged over the ranks; last.pt keeps every rank's
random state, so a resumed run repeats an uninterrupted one with the same number of processes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from agent.core.dataset import read_dataset, write_json
from agent.core.errors import BinauraError, ConfigError
from agent.core.seld import DecodeConfig, decode_clip
from agent.core.tracks import tracks_problem
from training.eval.metrics import (
    DETECTION_KEYS,
    floor_intervals,
    floor_score,
    floor_score_interval,
    floor_terms,
    localization_metrics,
    match_clip,
)
from training.models.encoder import (
    BinauralEncoder,
    OutputEnsemble,
    build_encoder,
    load_checkpoint,
    load_scoring_model,
    n_parameters,
    save_checkpoint,
    with_tracks,
)
from training.recipes.distributed import Dist, init_distributed, rank_seed, seed_int
from training.recipes.encoder_batches import Batches, polar_mask, validation_indices
from training.recipes.encoder_data import FeatureCache, build_cache, default_cache_dir
from training.recipes.encoder_keep import (
    KEEP_ON,
    check_parts,
    familiar_clips,
    freeze,
    keep_loss,
    load_teacher,
    trainable,
)
from training.recipes.encoder_pit import pit_targets, polar_soft_targets, polar_weight
from training.synth.config import preset

#: what picks best.pt among a run's validation passes (the row's key; lower is better)
SELECT_BY = {"seld": "seld_score", "floors": "floor_score", "val_loss": "val_loss"}


@dataclass
class EncoderTrainConfig:
    size: str = "small"
    #: output tracks per class of a model built here (EncoderConfig.tracks; multi-ACCDOA when > 1).
    #: An --init checkpoint with one track is widened to this many (training.models.encoder.with_tracks)
    tracks: int = 1
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 200
    w_activity: float = 1.0
    w_lateral: float = 2.0
    w_polar: float = 0.5
    polar_smoothing_bins: float = 1.0  # Gaussian soft targets over neighbouring polar bins
    #: heads whose polar angle carries no cue (a sphere is front/back symmetric) get no polar
    #: loss when named here; empty for the shipped default (see docs/encoder-history.md)
    no_polar_heads: tuple[str, ...] = ()
    w_distance: float = 0.1
    w_semantic: float = 0.2
    p_mirror: float = 0.5
    p_band_mask: float = 0.5
    max_band_mask: int = 4
    #: common-mode equalisation: one random smooth gain curve (over log frequency) added to both
    #: ears' log-mel bands and to the mono mix's, as a different source spectrum or microphone would;
    #: the interaural channels do not change. eq_db sets its size: the tilt spans up to eq_db end to
    #: end, and cosine term k is up to eq_db / (2k) dB; see common_mode_eq
    p_eq: float = 0.0
    eq_db: float = 6.0
    val_clips: int = 400
    eval_every: int = 250
    threads: int = 0  # 0: all cores
    device: str = "auto"  # auto: CUDA when present, else CPU (the same recipe, faster)
    bf16: bool = True  # on CUDA only: bfloat16 autocast for the forward pass (losses in float32)
    #: stop by wall clock: > 0 fits the step count to this many seconds of training at the rate
    #: measured over steps 20-70 (the cosine schedule follows), and stops there at the latest
    time_budget_s: float = 0.0
    #: which validation pass makes best.pt: "seld" (decoded errors, see seld_score), "floors"
    #: (the issue's floors, see training.eval.metrics.floor_score) or "val_loss".
    #: The polar cross-entropy grows with over-confidence while decoded directions still improve,
    #: so the loss picks early, less-trained weights (docs/encoder-history.md, issue 3).
    select_by: str = "seld"
    #: parts of the model held still in a fine-tune, and the weight of the loss that holds the
    #: direction outputs on the init's (training/recipes/encoder_keep.py); off by default
    freeze: tuple[str, ...] = ()
    w_keep: float = 0.0
    keep_on: str = "all"  # or "familiar": the clips drawn as the teacher's data was
    seed: int = 0

    def validate(self) -> EncoderTrainConfig:
        p = []
        for name in ("steps", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                p.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            p.append(f"lr must be > 0, got {self.lr}")
        for name in ("p_mirror", "p_band_mask", "p_eq"):
            if not 0 <= getattr(self, name) <= 1:
                p.append(f"{name} must be in [0, 1]")
        if self.device not in ("auto", "cpu", "cuda"):
            p.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not 0 <= self.eq_db <= 24:
            p.append(f"eq_db must be in [0, 24] dB, got {self.eq_db}")
        if self.val_clips < 0:
            p.append("val_clips must be >= 0")
        if self.select_by not in SELECT_BY:
            p.append(f"select_by must be one of {', '.join(SELECT_BY)}, got {self.select_by!r}")
        p += check_parts(tuple(self.freeze))
        if not self.w_keep >= 0:
            p.append(f"w_keep must be >= 0, got {self.w_keep}")
        if self.keep_on not in KEEP_ON:
            p.append(f"keep_on must be one of {', '.join(KEEP_ON)}, got {self.keep_on!r}")
        if self.time_budget_s < 0:
            p.append(f"time_budget_s must be >= 0 (0: no limit), got {self.time_budget_s}")
        if problem := tracks_problem(self.tracks):
            p.append(problem)
        if p:
            raise ConfigError(p, "encoder training config")
        return self


def seld_loss(model_out, accdoa_t, logd_t, active_t, cfg: EncoderTrainConfig,
              polar_ok: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """model_out: the model's outputs with training_outputs=True. accdoa_t holds unit vectors
    (x ahead, y left, z up) on active frames. Targets are per slot (B, T, S); with several
    tracks per class they are first put in the order of least loss per clip and class
    (permutation-invariant training, training/recipes/encoder_pit.py), and the semantic
    branch's per-class logits learn whether any track of the class is active."""
    accdoa, logd, class_logits, _, _, activity_logits, sin_lat, polar_logits = model_out
    accdoa_t, logd_t, active_t = pit_targets(model_out, accdoa_t, logd_t, active_t, cfg, polar_ok)
    w = active_t.float()
    n_active = w.sum().clamp_min(1.0)
    l_act = nn.functional.binary_cross_entropy_with_logits(activity_logits, w)
    l_lat = ((sin_lat - accdoa_t[..., 1]).pow(2) * w).sum() / n_active
    soft = polar_soft_targets(accdoa_t, polar_logits.shape[-1], cfg.polar_smoothing_bins)
    ce = -(soft * torch.log_softmax(polar_logits, dim=-1)).sum(-1)
    wp = polar_weight(w, accdoa_t, polar_ok)  # cos^2(lateral) on active frames of clips with polar cues
    l_pol = (ce * wp).sum() / wp.sum().clamp_min(1.0)
    l_dist = ((logd - logd_t).pow(2) * w).sum() / n_active
    w_cls = w if w.shape == class_logits.shape else w.reshape(*class_logits.shape[:2], -1,
                                                                   class_logits.shape[-1]).amax(2)
    l_sem = nn.functional.binary_cross_entropy_with_logits(class_logits, w_cls)
    with torch.no_grad():  # monitored, not optimised: the mean angle between unit vectors on active frames
        cos = (accdoa / accdoa.norm(dim=-1, keepdim=True).clamp_min(1e-6) * accdoa_t).sum(-1).clamp(-1, 1)
        angle = (torch.rad2deg(torch.acos(cos)) * w).sum() / n_active
    total = (cfg.w_activity * l_act + cfg.w_lateral * l_lat + cfg.w_polar * l_pol + cfg.w_distance * l_dist
             + cfg.w_semantic * l_sem)
    return {"loss": total, "activity": l_act, "lateral": l_lat, "polar": l_pol, "distance": l_dist,
            "semantic": l_sem, "frame_angle_deg": angle}


def seld_score(row: dict) -> float:
    """One number from a validation pass, lower is better (in the spirit of the DCASE SELD
    score): the mean of angular error / 180 deg, 1 - detection_f1, distance error rate
    (> 0.5 m) and 1 - class accuracy; a missing metric counts as its worst value, 1.
    detection_f1 is the DCASE location-aware, class-dependent F-score (a detection counts
    only with the right class within 20 deg; training.eval.metrics), so the right number of
    sources in the wrong places scores as misses and false alarms, not as detections."""
    def get(key, worst=1.0):
        v = row.get(key)
        return worst if v is None else float(v)

    return (get("angular_error_mean_deg", 180.0) / 180.0 + (1.0 - get("detection_f1", 0.0))
            + get("distance_er05") + (1.0 - get("class_accuracy", 0.0))) / 4.0


def validation_pass(model: BinauralEncoder | OutputEnsemble, cache: FeatureCache, indices: np.ndarray, scenes,
                    cfg: EncoderTrainConfig, results_out: list | None = None) -> dict:
    """`evaluate` plus the pass's SELD score: the row a run's history and best.pt keep."""
    row = evaluate(model, cache, indices, scenes, cfg, results_out=results_out)
    row["seld_score"] = seld_score(row)
    return row


def score_checkpoints(data_dir: str | os.PathLike, checkpoints: list[str], val_clips: int = 400,
                      cache_dir: str | os.PathLike | None = None, progress: bool = True,
                      all_clips: bool = False, workers: int | None = None) -> dict[str, dict]:
    """Each checkpoint's validation pass (default decoding) with its SELD and floor scores:
    how stages are compared on clips none of them trained on. By default the held-out clips of
    a training cache (the ones a run on it validates on); all_clips scores every clip, for a
    selection set that nobody trained on. The cache defaults to DATA/features-SIZE and is built
    there when missing (the dataset's audio is needed then). Losses use the default loss
    weights, so they compare too.

    Each row also holds 95% clip-bootstrap intervals: `floor_score_ci` and, per floor metric,
    `floor_intervals`; every checkpoint after the first gets the paired difference first
    minus it, read on the same resampled clips (`floor_score_diff_ci`, `floor_differences`),
    where both scored the same clips.

    A checkpoint written as a.pt+b.pt is scored as the output ensemble of its members
    (`OutputEnsemble`: their predictions averaged), on the first member's feature cache."""
    cfg = EncoderTrainConfig()
    out, scenes_of = {}, {}
    first: list | None = None  # the first checkpoint's clip results: the paired differences' reference
    for path in checkpoints:
        model = load_scoring_model(path)
        where = Path(cache_dir) if cache_dir else default_cache_dir(data_dir, model.cfg)
        if not (where / "meta.json").exists():
            build_cache(data_dir, where, model.cfg, workers=workers, progress=progress)
        cache = FeatureCache(where, model.cfg)
        idx = np.arange(len(cache)) if all_clips else validation_indices(len(cache), val_clips)
        if not len(idx):
            raise BinauraError(f"{where}: {len(cache)} clips hold out no validation clips (need >= 5)")
        data = cache.meta["data"]
        if data not in scenes_of:  # read each dataset's scenes once, however many checkpoints
            scenes_of[data] = read_dataset(data, check_audio=False).scenes
        results: list = []
        row = {"clips": len(idx), **validation_pass(model, cache, idx, scenes_of[data], cfg, results_out=results)}
        row["floor_score_ci"] = floor_score_interval(results)
        row["floor_intervals"] = floor_intervals(results)
        if first is None:
            first = results
        elif [r.scene.id for r in first] == [r.scene.id for r in results]:
            row["floor_score_diff_ci"] = floor_score_interval(first, minus=results)
            row["floor_differences"] = floor_intervals(first, minus=results)
        out[str(path)] = row
        if progress:
            fs = row["floor_score"]
            print(f"{path}: seld_score {row['seld_score']:.4f}, floor_score "
                  f"{'-' if fs is None else f'{fs:.4f}'}", flush=True)
    return out


def _fit_steps(cfg: EncoderTrainConfig, step: int, per_step: float, elapsed_s: float,
               eval_s: float, cap: int | None = None) -> EncoderTrainConfig:
    """The config with `steps` set to what the time budget allows at the measured step rate,
    leaving room for the validation passes still to come (eval_s: seconds per pass, 5 s
    assumed until one has been timed); never more than `cap` (default: the config's own steps)."""
    left = cfg.time_budget_s - elapsed_s
    per_eval = (eval_s if eval_s > 0 else 5.0) if cfg.val_clips else 0.0
    fit = int(max(0.0, left - per_eval) / (per_step + per_eval / cfg.eval_every))
    return dataclasses.replace(cfg, steps=max(step + 1, min(cap or cfg.steps, step + fit)))


def _lr_at(step: int, cfg: EncoderTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


@torch.no_grad()
def evaluate(model: BinauralEncoder | OutputEnsemble, cache: FeatureCache, indices: np.ndarray, scenes, cfg: EncoderTrainConfig,
             batch: int = 32, results_out: list | None = None) -> dict:
    """Validation losses and decoded localization metrics on held-out training-split clips;
    results_out, when given, receives each clip's matched ClipResult (for intervals)."""
    model.eval()
    dev = next(model.parameters()).device
    sums: dict[str, float] = {}
    results = []
    rate = model.cfg.output_rate_hz
    polar_ok = torch.from_numpy(polar_mask(cache, cfg))
    for i in range(0, len(indices), batch):
        pick = indices[i:i + batch]
        sp, se, *targets = (torch.from_numpy(a).to(dev) for a in cache.batch(pick))
        out = model(sp, se, training_outputs=True)
        losses = seld_loss(out, *targets, cfg, polar_ok=polar_ok[pick].to(dev))
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(pick)
        acc, logd = out[0].cpu().numpy(), out[1].cpu().numpy()
        for j, ci in enumerate(pick):
            preds = decode_clip(acc[j], logd[j], model.cfg.slot_labels, rate)
            results.append(match_clip(scenes[ci], preds))
    model.train()
    if results_out is not None:
        results_out.extend(results)
    m = localization_metrics(results)
    keep = ("angular_error_mean_deg", "front_back_confusion", "distance_er05", "class_accuracy",
            *DETECTION_KEYS)
    one = m["by_condition"].get("n_sources=1", {})
    return {**{f"val_{k}": v / max(1, len(indices)) for k, v in sums.items()},
            **{k: m[k] for k in keep}, "one_source_angular_error_deg": one.get("angular_error_mean_deg"),
            "floor_score": floor_score(m), "floor_terms": floor_terms(m)}


@torch.no_grad()
def tune_decode(model: BinauralEncoder, cache: FeatureCache, indices: np.ndarray, scenes,
                thresholds=(0.3, 0.4, 0.5, 0.6, 0.7), min_frames=(2, 3, 5, 8)) -> tuple[DecodeConfig, dict]:
    """Choose the decoding threshold and minimum duration on held-out training-split clips
    (never the benchmark): maximise the count-only detection F1 (detection_f1_unlocated) x
    (1 - ER20), the rule every shipped checkpoint's decoding was tuned by; ER20 is the term
    that scores where the detections are. The grid also records the DCASE detection_f1."""
    model.eval()
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(indices), 32):
        pick = indices[i:i + 32]
        sp, se = (torch.from_numpy(a).to(dev) for a in cache.batch(pick)[:2])
        o = model(sp, se)
        outs += [(ci, o[0][j].cpu().numpy(), o[1][j].cpu().numpy()) for j, ci in enumerate(pick)]
    best, best_score, table = None, -1.0, []
    for th in thresholds:
        for mf in min_frames:
            dc = DecodeConfig(activity_threshold=th, min_frames=mf)
            res = [match_clip(scenes[ci], decode_clip(a, d, model.cfg.slot_labels, model.cfg.output_rate_hz, dc))
                   for ci, a, d in outs]
            m = localization_metrics(res)
            er20 = m["er20"] if m["er20"] is not None else 1.0
            score = (m["detection_f1_unlocated"] or 0.0) * (1.0 - er20)
            table.append({"activity_threshold": th, "min_frames": mf, "score": score,
                          "detection_f1_unlocated": m["detection_f1_unlocated"], "er20": m["er20"],
                          "detection_f1": m["detection_f1"],
                          "angular_error_mean_deg": m["angular_error_mean_deg"]})
            if score > best_score:
                best, best_score = dc, score
    model.train()
    return best, {"grid": table, "chosen": dataclasses.asdict(best), "clips": len(indices)}


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    tr = [h for h in history if "loss" in h]
    for key in ("loss", "activity", "lateral", "polar", "distance", "semantic"):
        axes[0].plot([h["step"] for h in tr], [h[key] for h in tr], label=f"train {key}")
    ev = [h for h in history if "val_loss" in h]
    if ev:
        axes[0].plot([h["step"] for h in ev], [h["val_loss"] for h in ev], "k--o", label="val loss")
        axes[1].plot([h["step"] for h in ev], [h["angular_error_mean_deg"] for h in ev], "-o", label="angular error (deg)")
        ax2 = axes[1].twinx()
        ax2.plot([h["step"] for h in ev], [h["class_accuracy"] or 0 for h in ev], "g-s", label="class accuracy")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="upper right")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("step")
    axes[1].legend(loc="upper left")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def finalize_decode(best_path: Path, cache: FeatureCache, val_idx: np.ndarray, scenes) -> DecodeConfig:
    """Tune the decoding on validation clips and store it in the checkpoint (the export copies it)."""
    model, ck = load_checkpoint(best_path)
    dc, report = tune_decode(model, cache, val_idx, scenes)
    extra = {k: v for k, v in ck.items() if k not in ("format", "config", "model")}
    extra.update(decode=dataclasses.asdict(dc), decode_tuning=report)
    save_checkpoint(best_path, model, **extra)
    print(f"decoding tuned on {len(val_idx)} validation clips: threshold {dc.activity_threshold}, "
          f"min_frames {dc.min_frames}", flush=True)
    return dc


def _data_description(cache: FeatureCache) -> str:
    """What the cache was computed from: the synthesis seed and preset when the dataset records them."""
    root = Path(cache.meta["data"])
    try:
        sc = json.loads((root / "synth_config.json").read_text())
        first, n = sc.get("start", 0), sc["scenes"]
        span = f", scenes {first}..{first + n - 1}" if first else ""
        split = sc["config"]["split"]
        return (f"{split} preset{_overrides(split, sc['config'])}, {n:,} scenes, seed {sc['seed']}{span} "
                f"({root.name})")
    except (OSError, ValueError, KeyError, TypeError):
        return f"{cache.meta['n_clips']:,} clips from {root}"


def _overrides(split: str, config: dict) -> str:
    """' (field=value, ...)' for the fields where a dataset's config departs from its preset."""
    try:
        base = json.loads(json.dumps(preset(split).to_dict()))
    except BinauraError:
        return ""
    diff = [f"{k}={config[k]}" for k in sorted(config) if k in base and config[k] != base[k]]
    return f" ({', '.join(diff)})" if diff else ""


def stage_record(cfg: EncoderTrainConfig, cache: FeatureCache, dev: torch.device, init: str | None,
                 world_size: int = 1) -> dict:
    """This run's entry in a checkpoint's `lineage` (the list of training stages behind its
    weights), less the steps and minutes, which the trainer adds at each save. `batch` is per
    process; a run over several processes names their number (`world_size`)."""
    machine = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{os.cpu_count()}-core CPU"
    if world_size > 1:
        machine = f"{world_size} x {machine}" if dev.type == "cuda" else f"{world_size} processes, {machine}"
    rec = {"data": _data_description(cache), "batch": cfg.batch_size, "lr": cfg.lr, "machine": machine}
    if world_size > 1:
        rec["world_size"] = world_size
    if cfg.no_polar_heads:
        rec["no_polar_heads"] = list(cfg.no_polar_heads)
    rec["w_polar"] = cfg.w_polar
    if cfg.w_distance != EncoderTrainConfig.w_distance:  # earlier stages all ran at the default
        rec["w_distance"] = cfg.w_distance
    if cfg.tracks != 1:
        rec["tracks"] = cfg.tracks
    if cfg.p_eq > 0:
        rec["p_eq"], rec["eq_db"] = cfg.p_eq, cfg.eq_db
    if cfg.freeze:
        rec["freeze"] = list(cfg.freeze)
    if cfg.w_keep > 0:
        rec["w_keep"], rec["keep_on"] = cfg.w_keep, cfg.keep_on
    if init:
        rec["init"] = Path(init).name
    return rec


def train_encoder(cache_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: EncoderTrainConfig,
                  resume: bool = False, init: str | None = None, progress: bool = True) -> Path:
    """Train; returns the path of the best checkpoint (weights and config only). Under `accelerate
    launch` / torchrun every rank calls it (module docstring); rank 0 writes the files, and every
    rank returns once they are written."""
    cfg.validate()
    dist = init_distributed(cfg.device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    last = out / "last.pt"
    state = None
    if resume:
        if not last.exists():
            raise BinauraError(f"--resume: {last} does not exist; start without --resume")
        model, state = load_checkpoint(last)
        saved = state.get("train_config", {})
        if saved.get("size") != cfg.size:
            raise BinauraError(f"--resume: {last} was trained with size {saved.get('size')!r}, not {cfg.size!r}")
        if model.cfg.tracks != cfg.tracks:
            raise BinauraError(f"--resume: {last} has {model.cfg.tracks} output track(s) per class, not {cfg.tracks}")
    elif init:
        model, init_ck = load_checkpoint(init)
        if model.cfg.tracks != cfg.tracks and cfg.w_keep > 0:
            raise BinauraError(f"--init {init} has {model.cfg.tracks} output track(s), this run {cfg.tracks}: the "
                               f"keep loss (w_keep > 0) needs the init's outputs slot for slot; train without it")
        model = with_tracks(model, cfg.tracks)
    else:
        model = build_encoder(cfg.size, cfg.tracks)
    teacher = load_teacher(init, load_checkpoint) if cfg.w_keep > 0 else None
    cache = FeatureCache(cache_dir, model.cfg)
    if state is None and init is None:
        meta = cache.meta
        model.set_normalisation(np.array(meta["spatial_mean"]), np.array(meta["spatial_std"]),
                                np.array(meta["semantic_mean"]), np.array(meta["semantic_std"]))
    n = len(cache)
    val_idx = validation_indices(n, cfg.val_clips)
    n_val = len(val_idx)
    train_idx = np.arange(n - n_val)
    familiar = teacher is not None and cfg.keep_on == "familiar"
    # the scenes' labels: for validation, and for which clips the keep loss holds (read once)
    scenes = read_dataset(cache.meta["data"], check_audio=False).scenes if n_val or familiar else []
    dev = dist.device
    model.to(dev).train()
    freeze(model, tuple(cfg.freeze))  # (no gradient from here on; the modes are set again at each step)
    if teacher is not None:
        teacher.model.to(dev)
    ddp = dist.wrap(model)  # trains through this; evaluated and saved as `model`
    opt = torch.optim.AdamW(trainable(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(rank_seed(dist.rank, cfg.seed))  # each rank its own batches
    if not dist.is_main:  # and its own dropout (rank 0 keeps a plain process's stream)
        torch.manual_seed(seed_int(rank_seed(dist.rank, cfg.seed)))
    step, history, best = 0, [], math.inf
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        step, history, best = state["step"], state["history"], state.get("best", math.inf)
        _restore_rngs(state, rng, dist)
    batches = Batches(cache, train_idx, cfg, rng, device=dev)
    keep_ok = None  # (N,) clips the keep loss holds, on the device the batches come from
    if teacher is not None:
        mask = familiar_clips(scenes) if familiar else np.ones(n, bool)
        keep_ok = torch.from_numpy(mask).to(batches.polar_ok.device)
        if dist.is_main:
            print(f"keep loss on {int(mask[train_idx].sum())} of {len(train_idx)} training clips ({cfg.keep_on})")
    # The stages before this run (fine-tuning extends its init's lineage; a resumed run keeps its own).
    if state is not None:
        saved = list(state.get("lineage") or [{}])
        prior, init = saved[:-1], init or saved[-1].get("init")
    else:
        prior = list(init_ck.get("lineage", [])) if init else []
    trained_s = float(state.get("trained_s", 0.0)) if state is not None else 0.0
    stage = stage_record(cfg, cache, dev, init, dist.world_size)  # read once: the dataset's record, the device
    amp = dev.type == "cuda" and cfg.bf16
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed clip length: pick the fastest kernels once
    procs = f" x {dist.world_size} processes" if dist.active else ""
    say = print if dist.is_main else (lambda *a, **k: None)
    say(f"encoder {cfg.size} on {dev}{procs}: {n_parameters(model) / 1e6:.2f} M parameters; {len(train_idx)} "
        f"training clips, {n_val} validation clips; steps {step}..{cfg.steps}", flush=True)
    bar = tqdm(total=cfg.steps, initial=step, desc="train encoder", unit="step",
               disable=not (progress and dist.is_main))
    note = tqdm.write if dist.is_main else (lambda *a, **k: None)
    t0, run = time.perf_counter(), {}
    first_step, eval_s = step, 0.0
    # A time budget is fitted at step 70 (from the rate over steps 20-70) and refitted at each
    # validation pass from the rate since the last fit, so a rate measured while something else
    # held the cores (or a machine that speeds up) does not leave the schedule far from the budget.
    # fit_mark: (time, validation seconds so far, step) where the next rate is measured from.
    max_steps, fit_mark, n_evals = cfg.steps, None, 0

    def budget_fit(cfg: EncoderTrainConfig) -> tuple[float, EncoderTrainConfig]:
        """The step time since fit_mark (validation excluded) and the schedule fitted to it
        (rank 0's, on every rank: the ranks must stop at the same step)."""
        now = time.perf_counter()
        per_step = (now - fit_mark[0] - (eval_s - fit_mark[1])) / (step - fit_mark[2])
        return dist.broadcast((per_step, _fit_steps(cfg, step, per_step, now - t0, eval_s / max(1, n_evals),
                                                    cap=max_steps)))

    def lineage() -> list[dict]:
        minutes = round((trained_s + time.perf_counter() - t0) / 60, 1)
        return prior + [{**stage, "steps": step, "minutes": minutes}]
    if init and state is None and n_val and dist.is_main:
        # a fine-tune's starting point, scored on this run's validation clips: the bar its own
        # passes must clear before its weights replace the init's (history row "init": true)
        row = {"step": step, "init": True, **validation_pass(model, cache, val_idx, scenes, cfg)}
        history.append(row)
        print(f"init {Path(init).name} on the validation clips: seld_score={row['seld_score']:.4f}, "
              f"angular error {row['angular_error_mean_deg']:.1f} deg", flush=True)
    dist.barrier()
    while step < cfg.steps:
        if cfg.time_budget_s and step == first_step + 20:  # past the first steps' kernel selection
            fit_mark = (time.perf_counter(), eval_s, step)
        if cfg.time_budget_s and step == first_step + 70 and fit_mark is not None:
            per_step, cfg = budget_fit(cfg)
            note(f"time budget {cfg.time_budget_s:.0f} s at {per_step * 1e3:.1f} ms/step: "
                 f"training to step {cfg.steps}")
            bar.total = cfg.steps
            fit_mark = (time.perf_counter(), eval_s, step)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        if cfg.freeze:  # again each step: a validation pass puts every part back in train mode
            freeze(model, tuple(cfg.freeze))
        sp, se, acc, logd, act, polar_ok = (t.to(dev, non_blocking=True) for t in batches.sample())
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            pred = ddp(sp, se, training_outputs=True)
        losses = seld_loss(tuple(o.float() for o in pred), acc, logd, act, cfg, polar_ok=polar_ok)
        if teacher is not None:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                held = teacher.outputs(sp, se)
            held_act = act * keep_ok[batches.last].to(act.device)[:, None, None]
            losses["keep"] = keep_loss(tuple(o.float() for o in pred), tuple(o.float() for o in held), held_act)
            losses["loss"] = losses["loss"] + cfg.w_keep * losses["keep"]
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(trainable(model), 5.0)
        opt.step()
        step += 1
        for k, v in losses.items():
            run[k] = run.get(k, 0.0) + v.detach()  # summed on the device: one sync per 25 steps
        if step % 25 == 0 or step == cfg.steps:
            k = 25 if step % 25 == 0 else step % 25
            mean = dist.mean({kk: float(v) / k for kk, v in run.items()})  # over the ranks' batches
            row = {"step": step, "lr": _lr_at(step - 1, cfg), **mean, "elapsed_s": round(time.perf_counter() - t0, 1)}
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", lat=f"{row['lateral']:.4f}", pol=f"{row['polar']:.3f}",
                            ang=f"{row['frame_angle_deg']:.1f}")
            run = {}
        bar.update()
        spent = bool(cfg.time_budget_s) and time.perf_counter() - t0 > cfg.time_budget_s and step < cfg.steps
        if cfg.time_budget_s and dist.broadcast(spent):  # rank 0's clock decides for all
            note(f"time budget {cfg.time_budget_s:.0f} s spent at step {step} of {cfg.steps}: stopping")
            cfg = dataclasses.replace(cfg, steps=step)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            t_eval = time.perf_counter()
            # every rank's random streams, for last.pt (a collective: all ranks take part)
            streams = dist.gather({"rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()})
            if dist.is_main:
                best = _validate_and_save(model, opt, cache, val_idx, scenes, cfg, out, step, history, best,
                                          lineage(), streams, trained_s + time.perf_counter() - t0,
                                          dist.world_size, note)
            dist.barrier()  # the others wait for rank 0's validation pass and files
            eval_s += time.perf_counter() - t_eval
            n_evals += 1
            if fit_mark is not None and step < cfg.steps and step - fit_mark[2] >= 100:
                per_step, refit = budget_fit(cfg)
                if abs(refit.steps - cfg.steps) > 0.02 * cfg.steps:  # say so when it is news
                    note(f"time budget: {per_step * 1e3:.1f} ms/step since step {fit_mark[2]}: "
                         f"training to step {refit.steps} (was {cfg.steps})")
                cfg, bar.total = refit, refit.steps
                fit_mark = (time.perf_counter(), eval_s, step)
    bar.close()
    if dist.is_main:
        _save_final(model, cfg, out, step, lineage(), cache, val_idx, scenes, dist.world_size)
    dist.barrier()
    return out / "best.pt"


def _validate_and_save(model: BinauralEncoder, opt, cache: FeatureCache, val_idx: np.ndarray, scenes,
                       cfg: EncoderTrainConfig, out: Path, step: int, history: list, best: float,
                       lineage: list, streams: list[dict], trained_s: float, world_size: int,
                       note: Callable[[str], object]) -> float:
    """A validation pass (when the run holds clips out), best.pt when it beats `best`, last.pt,
    history.json and loss.png; returns the best score so far. streams: each rank's random state."""
    row = {"step": step}
    if len(val_idx):
        row.update(validation_pass(model, cache, val_idx, scenes, cfg))
        note(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
        history.append(row)
        score = row[SELECT_BY[cfg.select_by]]
        score = math.inf if score is None else score  # floors: clips without kemar-mit
        if score < best:
            best = score
            save_checkpoint(out / "best.pt", model, train_config=dataclasses.asdict(cfg), step=step,
                            metrics=row, lineage=lineage, world_size=world_size)
    save_checkpoint(out / "last.pt", model, train_config=dataclasses.asdict(cfg), step=step, history=history,
                    optimizer=opt.state_dict(), rng=streams[0]["rng"], torch_rng=streams[0]["torch_rng"],
                    rank_streams=streams[1:], world_size=world_size, best=best, lineage=lineage,
                    trained_s=trained_s)
    write_json(out / "history.json", history)
    plot_history(history, out / "loss.png")
    return best


def _save_final(model: BinauralEncoder, cfg: EncoderTrainConfig, out: Path, step: int, lineage: list,
                cache: FeatureCache, val_idx: np.ndarray, scenes, world_size: int) -> None:
    """best.pt (the final weights when no validation pass chose), final.pt, both with decoding
    tuned on the validation clips, and train_config.json."""
    if not (out / "best.pt").exists():
        save_checkpoint(out / "best.pt", model, train_config=dataclasses.asdict(cfg), step=step, lineage=lineage,
                        world_size=world_size)
    # final.pt: the weights at the end of the schedule (in a fine-tune on fresh data often as good
    # as the best validation pass, whose pick is noisy with a few hundred clips)
    save_checkpoint(out / "final.pt", model, train_config=dataclasses.asdict(cfg), step=step, lineage=lineage,
                    world_size=world_size)
    if len(val_idx):
        finalize_decode(out / "best.pt", cache, val_idx, scenes)
        finalize_decode(out / "final.pt", cache, val_idx, scenes)
    (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))


def _restore_rngs(state: dict, rng: np.random.Generator, dist: Dist) -> None:
    """This rank's random streams from last.pt (rank 0's under `rng`/`torch_rng`, the others' under
    `rank_streams`). A rank the saved run did not have starts its streams afresh from (seed, step,
    rank): the run goes on, but no longer repeats an uninterrupted one."""
    if dist.is_main:
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    else:
        saved = state.get("rank_streams") or []
        if dist.rank <= len(saved):
            rng.bit_generator.state = saved[dist.rank - 1]["rng"]
            torch.set_rng_state(saved[dist.rank - 1]["torch_rng"])
        else:
            entropy = rank_seed(dist.rank, int(state["train_config"].get("seed", 0)), int(state["step"]))
            rng.bit_generator.state = np.random.default_rng(entropy).bit_generator.state
            torch.manual_seed(seed_int(entropy))
    saved_world = int(state.get("world_size", 1))
    if dist.is_main and saved_world != dist.world_size:
        print(f"--resume: {saved_world} process(es) wrote last.pt, {dist.world_size} continue it: the batches "
              f"differ from an uninterrupted run's", flush=True)
