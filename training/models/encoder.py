"""The joint binaural encoder (stage 1 of the curriculum) and its checkpoints.

Outputs per output frame (10 per second for the default), with S = tracks x C slots
(`EncoderConfig.tracks`, 1 for every shipped encoder, where the slots are the classes; slot
s = track * C + class, agent.core.tracks):
- accdoa (B, T, S, 3): for each slot, activity x unit direction vector in the
  head frame of ARCHITECTURE.md (+x ahead, +y left, +z up); the vector's length
  is the class's activity (the ACCDOA format of Shimada et al. 2021, with
  distance as in the DCASE 2024 SELD baseline, one track per class).
  Inside, the direction is built in interaural-polar coordinates, the way two
  ears hear: the lateral angle (sin = y; from ITD and ILD, unambiguous) is a
  regression, the polar angle around the ear axis (front, up, back, down; from
  the pinna's spectral cues, ambiguous on the cone of confusion) a
  classification over bins, decoded at the most probable bin. Regressing a
  Cartesian vector instead makes an uncertain front/back hedge towards the ear
  axis and drags the lateral angle with it. The activity is a sigmoid trained
  with cross-entropy. The heads read both branches (dense fusion), so class
  identity comes from the semantic stream as well.
  With several tracks (multi-ACCDOA, as in DCASE 2022 onward) each class has several slots, so
  two sources of one class are heard apart; which track a source lands on carries no meaning
  (training is permutation-invariant over the tracks, training/recipes/encoder_pit.py).
- log_distance (B, T, S): ln(distance / 1 m) of each slot's source.
- class_logits (B, T, C): the semantic branch's frame-wise class logits.
- spatial_emb (B, T, Ds), semantic_emb (B, T, Dm): frame embeddings for the LLM.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agent.core.errors import BinauraError
from training.models.branch import Branch, front_context, history_frames, time_context
from training.models.config import BUILDERS, EncoderConfig

OUTPUT_NAMES = ("accdoa", "log_distance", "class_logits", "spatial_emb", "semantic_emb")


class BinauralEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg.validate()
        n_bins, n_cls = cfg.features.n_mels, len(cfg.labels)
        # Feature normalisation lives in the model (and so in the ONNX graph): set from
        # training-data statistics by `set_normalisation`, identity until then.
        self.register_buffer("spatial_mean", torch.zeros(cfg.spatial.in_channels, 1, n_bins))
        self.register_buffer("spatial_std", torch.ones(cfg.spatial.in_channels, 1, n_bins))
        self.register_buffer("semantic_mean", torch.zeros(1, n_bins))
        self.register_buffer("semantic_std", torch.ones(1, n_bins))
        self.spatial = Branch(cfg.spatial, n_bins)
        self.semantic = Branch(cfg.semantic, n_bins)
        fused = cfg.spatial.d_model + cfg.semantic.d_model
        n_slots = cfg.tracks * n_cls  # slot = track * C + class
        self.activity_head = nn.Linear(fused, n_slots)
        self.lateral_head = nn.Linear(fused, n_slots)
        self.polar_head = nn.Linear(fused, n_slots * cfg.polar_bins)
        centres = torch.arange(cfg.polar_bins) * (2 * torch.pi / cfg.polar_bins)
        self.register_buffer("polar_cos", torch.cos(centres))
        self.register_buffer("polar_sin", torch.sin(centres))
        self.distance_head = nn.Linear(fused, n_slots)
        self.class_head = nn.Linear(cfg.semantic.d_model, n_cls)
        lo, hi = cfg.log_distance_range
        with torch.no_grad():  # start at the middle of the distance range
            self.distance_head.bias.fill_((lo + hi) / 2)

    def set_normalisation(self, spatial_mean, spatial_std, semantic_mean, semantic_std) -> None:
        """Per-channel, per-band statistics; spatial (C, F), semantic (F,)."""
        with torch.no_grad():
            self.spatial_mean.copy_(torch.as_tensor(spatial_mean).reshape(self.spatial_mean.shape))
            self.spatial_std.copy_(torch.as_tensor(spatial_std).reshape(self.spatial_std.shape).clamp_min(1e-3))
            self.semantic_mean.copy_(torch.as_tensor(semantic_mean).reshape(self.semantic_mean.shape))
            self.semantic_std.copy_(torch.as_tensor(semantic_std).reshape(self.semantic_std.shape).clamp_min(1e-3))

    def forward(self, spatial: torch.Tensor, semantic: torch.Tensor, training_outputs: bool = False):
        """spatial (B, 6, T, F), semantic (B, T, F) -> the five outputs named in OUTPUT_NAMES
        (plus activity logits and unit directions when training_outputs)."""
        return self.back(*self.front(spatial, semantic), training_outputs=training_outputs)

    def front(self, spatial: torch.Tensor, semantic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised features -> both branches' front frames (B, T', Ds), (B, T', Dm): the
        per-frame part of the network, with a short reach in time (`front_context`)."""
        xs = (spatial - self.spatial_mean) / self.spatial_std
        xm = ((semantic - self.semantic_mean) / self.semantic_std).unsqueeze(1)
        return self.spatial.front(xs), self.semantic.front(xm)

    def back(self, hs: torch.Tensor, hm: torch.Tensor, training_outputs: bool = False):
        """Front frames -> the outputs of `forward`: causal temporal blocks (each output frame
        reads `history_frames` earlier front frames), then the per-frame heads."""
        hs = self.spatial.run_temporal(hs)
        hm = self.semantic.run_temporal(hm)
        b, t, _ = hs.shape
        hf = torch.cat([hs, hm], dim=-1)
        activity_logits = self.activity_head(hf)
        sin_lat = torch.tanh(self.lateral_head(hf))  # (B, T, S)
        polar_logits = self.polar_head(hf).reshape(b, t, sin_lat.shape[-1], -1)  # (B, T, S, K)
        unit = self._unit(sin_lat, polar_logits)
        accdoa = torch.sigmoid(activity_logits).unsqueeze(-1) * unit
        lo, hi = self.cfg.log_distance_range
        log_distance = self.distance_head(hf).clamp(lo, hi)
        class_logits = self.class_head(hm)
        if training_outputs:
            return accdoa, log_distance, class_logits, hs, hm, activity_logits, sin_lat, polar_logits
        return accdoa, log_distance, class_logits, hs, hm

    @torch.no_grad()
    def infer(self, spatial: np.ndarray, semantic: np.ndarray) -> list[np.ndarray]:
        """One clip's numpy features (6, T, F), (T, F) -> the five outputs as numpy, batch axis removed."""
        out = self(torch.from_numpy(spatial[None]), torch.from_numpy(semantic[None]))
        return [t[0].numpy() for t in out]

    def _unit(self, sin_lat: torch.Tensor, polar_logits: torch.Tensor) -> torch.Tensor:
        """Unit vector from the lateral sine and the polar bins: the probability-weighted mean
        direction of the most probable bin and its two neighbours (a bimodal front/back
        posterior is resolved, not averaged)."""
        k = polar_logits.shape[-1]
        p = torch.softmax(polar_logits, dim=-1)
        top = torch.argmax(p, dim=-1, keepdim=True)
        offset = torch.remainder(torch.arange(k, device=p.device) - top + k // 2, k) - k // 2
        w = p * (offset.abs() <= 1).to(p.dtype)
        c = (w * self.polar_cos).sum(-1)
        s = (w * self.polar_sin).sum(-1)
        norm = torch.sqrt(c * c + s * s + 1e-12)
        cos_lat = torch.sqrt((1 - sin_lat * sin_lat).clamp_min(0.0))
        # interaural-polar -> head frame: x = cos(lat) cos(pol), y = sin(lat), z = cos(lat) sin(pol)
        return torch.stack([cos_lat * c / norm, sin_lat, cos_lat * s / norm], dim=-1)

    def time_context(self) -> tuple[int, int]:
        """(left, right) input frames each output frame depends on, over both branches."""
        a, b = time_context(self.cfg.spatial), time_context(self.cfg.semantic)
        return max(a[0], b[0]), max(a[1], b[1])

    def front_context(self) -> tuple[int, int]:
        """(left, right) input frames the front frames read, over both branches."""
        a, b = front_context(self.cfg.spatial), front_context(self.cfg.semantic)
        return max(a[0], b[0]), max(a[1], b[1])

    def history_frames(self) -> int:
        """Earlier front frames one output frame reads, over both branches."""
        return max(history_frames(self.cfg.spatial), history_frames(self.cfg.semantic))

    @property
    def time_pool(self) -> int:
        return self.cfg.spatial.time_pool


def build_encoder(size: str = "small", tracks: int = 1) -> BinauralEncoder:
    if size not in BUILDERS:
        raise BinauraError(f"unknown encoder size {size!r}; expected one of {', '.join(BUILDERS)}")
    return BinauralEncoder(dataclasses.replace(BUILDERS[size](), tracks=tracks))


#: the heads whose outputs are per slot (tracks x classes), and the values per slot in each
SLOT_HEADS = {"activity_head": 1, "lateral_head": 1, "distance_head": 1, "polar_head": None}


def with_tracks(model: BinauralEncoder, tracks: int) -> BinauralEncoder:
    """`model` as an encoder with `tracks` output tracks per class: a one-track model's per-class
    head weights are copied to every track (so each track starts as the one-track model; the
    permutation-invariant loss puts a lone source on track 0 and teaches the others silence),
    every other weight is the model's. The model itself when it has that many tracks already."""
    if tracks == model.cfg.tracks:
        return model
    if model.cfg.tracks != 1:
        raise BinauraError(f"an encoder with {model.cfg.tracks} tracks cannot become one with {tracks}; only a "
                           f"one-track encoder's heads are copied to several tracks (train it with tracks={model.cfg.tracks})")
    wide = BinauralEncoder(dataclasses.replace(model.cfg, tracks=tracks))
    state = model.state_dict()
    for name in SLOT_HEADS:
        for part in ("weight", "bias"):
            key = f"{name}.{part}"
            state[key] = state[key].repeat(tracks, *([1] * (state[key].dim() - 1)))
    wide.load_state_dict(state)
    return wide.train(model.training)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _plain(value, where: str):
    """`value` as what `torch.load(weights_only=True)` reads back: tensors, dicts, lists,
    strings, numbers, None (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise BinauraError(f"checkpoint entry {where} is a {type(value).__name__}; a checkpoint holds tensors and "
                       f"plain data only")


def save_checkpoint(path: str | os.PathLike, model: BinauralEncoder, **extra) -> None:
    """Weights with the config that built them, as tensors and plain data (what `load_checkpoint`
    reads with weights_only); written to a temp name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    ck = {"format": "binaura-encoder-v1", "config": model.cfg.to_dict(), "model": model.state_dict(), **extra}
    torch.save(_plain(ck, "checkpoint"), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> tuple[BinauralEncoder, dict]:
    """A model ready for eval, and the checkpoint dict (history, step, ...).

    The file is read with `weights_only=True`: tensors and plain data only (dicts, lists,
    strings, numbers). A checkpoint is untrusted input (a path on the command line), and a
    full unpickle would run whatever code a crafted file names."""
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise BinauraError(f"{path}: refusing to load: it holds Python objects other than tensors and plain "
                           f"data, which a binaura checkpoint never does ({str(e).splitlines()[0]})") from e
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise BinauraError(f"{path}: not a readable torch checkpoint ({e})") from e
    if not isinstance(ck, dict) or ck.get("format") != "binaura-encoder-v1":
        raise BinauraError(f"{path}: expected a binaura encoder checkpoint (format binaura-encoder-v1)")
    if not isinstance(ck.get("config"), dict) or not isinstance(ck.get("model"), dict) or not all(
            isinstance(v, torch.Tensor) for v in ck["model"].values()):
        raise BinauraError(f"{path}: a binaura encoder checkpoint needs 'config' (a dict) and 'model' "
                           f"(a state dict of tensors)")
    model = BinauralEncoder(EncoderConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def average_checkpoints(paths: list[str | os.PathLike], out: str | os.PathLike) -> None:
    """Uniform weight average of encoder checkpoints fine-tuned from one start (a "model soup",
    Wortsman et al. 2022): every floating-point tensor, BatchNorm running statistics included,
    is the mean over the checkpoints; integer counters take the largest. The configs must be
    identical. The decoding settings come from the first checkpoint (re-tune them on
    validation clips if the members' differ); the lineage is the first checkpoint's plus one
    entry naming the members. Written to a temp name, then renamed."""
    if len(paths) < 2:
        raise BinauraError(f"averaging needs at least two checkpoints, got {len(paths)}")
    cks = []
    for p in paths:
        _, ck = load_checkpoint(p)
        cks.append(ck)
    first = cks[0]
    for p, ck in zip(paths[1:], cks[1:], strict=True):
        if ck["config"] != first["config"]:
            raise BinauraError(f"{p}: its encoder config differs from {paths[0]}'s; only checkpoints of one "
                               f"architecture can be averaged")
        if set(ck["model"]) != set(first["model"]):
            raise BinauraError(f"{p}: its weights do not have the same names as {paths[0]}'s")
    state = {}
    for k, v in first["model"].items():
        vals = [ck["model"][k] for ck in cks]
        if v.is_floating_point():
            state[k] = torch.stack([x.to(torch.float64) for x in vals]).mean(0).to(v.dtype)
        else:
            state[k] = torch.stack(vals).max(0).values
    model = BinauralEncoder(EncoderConfig.from_dict(first["config"]))
    model.load_state_dict(state)
    members = [{"checkpoint": str(p), "step": ck.get("step"), "stage": len(ck.get("lineage", [])),
                "last_stage": (ck.get("lineage") or [None])[-1]} for p, ck in zip(paths, cks, strict=True)]
    extra = {"lineage": list(first.get("lineage", [])) + [{"average_of": members, "decode_from": str(paths[0])}],
             "averaged_from": [str(p) for p in paths]}
    for k in ("decode", "decode_tuning"):
        if k in first:
            extra[k] = first[k]
    save_checkpoint(out, model, **extra)


class OutputEnsemble(nn.Module):
    """Encoders of one architecture run side by side with their predictions averaged: an
    output ensemble, the variance-reducing counterpart of `average_checkpoints`, for judging
    on validation clips whether members trained on different scenes err differently.

    Each member's output is combined the way it is read: ACCDOA vectors, log-distances,
    lateral sines and class logits by their mean; the activity by the mean of its
    probabilities; the polar angle by the mean of its bin probabilities (returned as
    log-probabilities, which softmax reads as they are). The embeddings are the first
    member's, so their width stays the config's."""

    def __init__(self, members: list[BinauralEncoder]):
        super().__init__()
        if len(members) < 2:
            raise BinauraError(f"an ensemble needs at least two encoders, got {len(members)}")
        first = members[0].cfg.to_dict()
        for i, m in enumerate(members[1:], start=2):
            if m.cfg.to_dict() != first:
                raise BinauraError(f"ensemble member {i}: its encoder config differs from member 1's; "
                                   f"only encoders of one architecture can be ensembled")
        if members[0].cfg.tracks > 1:  # members may carry one class's sources on different tracks
            raise BinauraError(f"an ensemble averages slot by slot, which mixes the sources of encoders with "
                               f"{members[0].cfg.tracks} tracks per class; ensemble one-track encoders")
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg

    def forward(self, spatial: torch.Tensor, semantic: torch.Tensor, training_outputs: bool = False):
        outs = [m(spatial, semantic, training_outputs=training_outputs) for m in self.members]

        def mean(i):
            return torch.stack([o[i] for o in outs]).mean(0)

        merged = (mean(0), mean(1), mean(2), outs[0][3], outs[0][4])
        if not training_outputs:
            return merged
        activity = torch.stack([torch.sigmoid(o[5]) for o in outs]).mean(0)
        polar = torch.stack([torch.softmax(o[7], dim=-1) for o in outs]).mean(0)
        return (*merged, torch.logit(activity, eps=1e-6), mean(6), torch.log(polar.clamp_min(1e-12)))


def ensemble_members(spec: str | os.PathLike) -> list[str]:
    """The checkpoint paths of a scoring spec: one path, or several joined by "+" (a.pt+b.pt)."""
    parts = str(spec).split("+")
    if any(not p for p in parts):
        raise BinauraError(f"{spec}: an ensemble is checkpoint paths joined by '+', e.g. a.pt+b.pt")
    return parts


def load_scoring_model(spec: str | os.PathLike) -> BinauralEncoder | OutputEnsemble:
    """A checkpoint path, or several joined by "+" (a.pt+b.pt): their `OutputEnsemble`."""
    parts = ensemble_members(spec)
    if len(parts) == 1:
        return load_checkpoint(parts[0])[0]
    return OutputEnsemble([load_checkpoint(p)[0] for p in parts]).eval()
