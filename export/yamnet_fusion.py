"""A learned rule for naming a source from the encoder and YAMNet together (issue 22; an
experiment, not on the device: docs/encoder.md, "A learned fusion in place of the AudioSet
table", measured that a fit on the kit's train side names recordings it has not heard no
better than the plain encoder, so `encoder:yamnet` keeps the table rule).

The encoder names what it was trained on (procedural sounds, TTS) well and real recordings
poorly; YAMNet (AudioSet) knows real recordings but hears the mono stretch of a source, rooms,
heads and neighbours included. Rather than a fixed gate deciding which to trust
(agent.localize.relabel's table rule), a multinomial logistic regression reads both for each
decoded source and gives a distribution over binaura's labels:
- the encoder's own label for the source (the class of the slot it was decoded from, one-hot)
  and its class evidence (`class_evidence`): each class's mean ACCDOA activity over the
  source's active frames (the largest over a class's tracks; a neighbour active on the same
  frames shows here too), as log(max(a, 1e-3));
- YAMNet on the source's steered stretch (agent.localize.relabel: same window, steering and
  patch weights), one of `INPUTS`: the AudioSet table's label scores, the 521 AudioSet scores
  (both as log(max(p, 1e-3))), or the 1024-d embedding;
standardised by the fit set's mean and spread, then z @ W + b. The weights are fitted by
export/relabel_fusion.py on a train-side set and stored in a .npz (no pickles) that this
module checks before use. Numpy only, so a fit that passes could run on the device as is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.core.errors import BinauraError

FORMAT = "binaura-yamnet-fusion-v1"
#: what of YAMNet's hearing the fusion reads: its name -> the width of that feature
INPUTS = {"label_scores": None, "scores": 521, "embedding": 1024}
#: the floor under activities and probabilities before their log
FLOOR = 1e-3


def class_evidence(accdoa: np.ndarray, slot_labels: tuple[str, ...], labels: tuple[str, ...],
                   active: np.ndarray) -> np.ndarray:
    """accdoa (T, S, 3) with one label per slot, a source's active frames (T,) bool -> (len(labels),)
    each label's mean activity (vector length) over those frames, the largest of its slots per
    frame; 0 for a label no slot carries."""
    act = np.linalg.norm(np.asarray(accdoa, float), axis=-1)  # (T, S)
    on = np.asarray(active, bool)
    if act.ndim != 2 or act.shape[1] != len(slot_labels) or on.shape != (act.shape[0],):
        raise BinauraError(f"class evidence: expected accdoa (T, {len(slot_labels)}, 3) and active ({act.shape[0]},), "
                           f"got {np.shape(accdoa)} and {on.shape}")
    if not on.any():
        raise BinauraError("class evidence: a source with no active frame has no evidence")
    out = np.zeros(len(labels))
    for k, lab in enumerate(labels):
        slots = [i for i, s in enumerate(slot_labels) if s == lab]
        if slots:
            out[k] = act[on][:, slots].max(axis=1).mean()
    return out


def features(own: np.ndarray, evidence: np.ndarray, hearing: np.ndarray, kind: str) -> np.ndarray:
    """(S,) the encoder's label indices, (S, C) class evidence and (S, F) YAMNet hearing of the
    given kind -> (S, 2C + F) raw features (before standardising)."""
    if kind not in INPUTS:
        raise BinauraError(f"YAMNet fusion: unknown input {kind!r}; expected one of {', '.join(INPUTS)}")
    ev = np.log(np.maximum(np.atleast_2d(np.asarray(evidence, float)), FLOOR))
    onehot = np.zeros_like(ev)
    onehot[np.arange(len(ev)), np.asarray(own, int).reshape(len(ev))] = 1.0
    h = np.atleast_2d(np.asarray(hearing, float))
    h = h if kind == "embedding" else np.log(np.maximum(h, FLOOR))
    return np.concatenate([onehot, ev, h], axis=-1)


@dataclass(frozen=True)
class YamnetFusion:
    """The fitted rule: labels (C,), input kind, mean and scale (D,), weights (D, C), bias (C,)."""

    labels: tuple[str, ...]
    kind: str
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    meta: dict

    def __post_init__(self):
        c, d = len(self.labels), self.weights.shape[0] if self.weights.ndim == 2 else -1
        if self.kind not in INPUTS:
            raise BinauraError(f"YAMNet fusion: unknown input {self.kind!r}; expected one of {', '.join(INPUTS)}")
        width = INPUTS[self.kind] or c
        if (self.weights.shape != (2 * c + width, c) or self.bias.shape != (c,) or self.mean.shape != (d,)
                or self.scale.shape != (d,) or not np.all(self.scale > 0)):
            raise BinauraError(f"YAMNet fusion: expected weights ({2 * c + width}, {c}), bias ({c},), mean and a positive "
                               f"scale ({2 * c + width},) for {c} labels and input {self.kind}; got {self.weights.shape}, "
                               f"{self.bias.shape}, {self.mean.shape}, {self.scale.shape}")

    def probabilities(self, own: np.ndarray, evidence: np.ndarray, hearing: np.ndarray) -> np.ndarray:
        """(S,) the encoder's label indices, (S, C) class evidence and (S, F) hearing -> (S, C)
        label probabilities."""
        z = (features(own, evidence, hearing, self.kind) - self.mean) / self.scale
        logits = z @ self.weights + self.bias
        logits = logits - logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=-1, keepdims=True)

    def labels_of(self, own: list[str], evidence: np.ndarray, hearing: np.ndarray) -> list[str]:
        """The likeliest label of each source, given the encoder's labels for them."""
        unknown = sorted(set(own) - set(self.labels))
        if unknown:
            raise BinauraError(f"YAMNet fusion: labels {', '.join(map(str, unknown))} are not among those it was "
                               f"fitted for")
        p = self.probabilities([self.labels.index(lab) for lab in own], evidence, hearing)
        return [self.labels[i] for i in np.argmax(p, axis=-1)]

    def save(self, path: str | os.PathLike) -> None:
        """Written to a temp name beside the target, then renamed."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, format=np.array(FORMAT), labels=np.array(self.labels), kind=np.array(self.kind),
                 mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                 weights=self.weights.astype(np.float32), bias=self.bias.astype(np.float32),
                 meta=np.array(json.dumps(self.meta, sort_keys=True)))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> YamnetFusion:
        """The rule from a .npz written by `save`; a clear error for anything else."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != FORMAT:
                    raise BinauraError(f"{path}: expected a YAMNet fusion of format {FORMAT}, got {str(z['format'])!r}")
                return cls(tuple(str(s) for s in z["labels"]), str(z["kind"]), z["mean"].astype(float),
                           z["scale"].astype(float), z["weights"].astype(float), z["bias"].astype(float),
                           json.loads(str(z["meta"])))
        except (OSError, KeyError, ValueError) as e:
            raise BinauraError(f"{path}: not a readable YAMNet fusion file ({e})") from e
