"""Decode SELD frames (ACCDOA with distance) into sources: shared by the agent and training eval.

A frame's ACCDOA vector for a class has length = activity and points at the
source. A class is a source of the clip when it is active (length >= threshold)
on at least `min_frames` frames; its direction is the activity-weighted mean
vector over those frames, its distance the median over them. (A robust mean
around the frames' consensus direction was tried on validation clips: it
lowered the lateral error by 1.5 deg but raised the angular error by 1 deg.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.core.geometry import cart_to_sph
from agent.core.scene import SourceEstimate


@dataclass(frozen=True)
class DecodeConfig:
    activity_threshold: float = 0.5
    min_frames: int = 3  # 0.3 s at 10 frames/s
    max_sources: int = 4


def decode_clip(accdoa: np.ndarray, log_distance: np.ndarray, labels: tuple[str, ...],
                frame_rate_hz: float, cfg: DecodeConfig | None = None) -> list[SourceEstimate]:
    """accdoa (T, C, 3), log_distance (T, C) -> clip-level sources, most active first."""
    cfg = cfg or DecodeConfig()
    act = np.linalg.norm(accdoa, axis=-1)  # (T, C)
    on = act >= cfg.activity_threshold
    found = []
    for c in np.flatnonzero(on.sum(0) >= cfg.min_frames):
        frames = on[:, c]
        w = act[frames, c]
        v = (accdoa[frames, c] * w[:, None]).sum(0)
        if not np.any(v):
            continue
        az, el, _ = cart_to_sph(v)
        dist = float(np.exp(np.median(log_distance[frames, c])))
        found.append((float(w.sum()), SourceEstimate(
            azimuth_deg=float(az), elevation_deg=float(el), distance_m=dist, label=labels[c],
            confidence=float(w.mean()))))
    found.sort(key=lambda t: -t[0])
    return [s for _, s in found[:cfg.max_sources]]


def frame_sources(accdoa: np.ndarray, log_distance: np.ndarray, labels: tuple[str, ...],
                  threshold: float = 0.5) -> list[list[SourceEstimate]]:
    """Per-frame sources (for tracking and narration): (T, C, 3) -> T lists."""
    act = np.linalg.norm(accdoa, axis=-1)
    out = []
    for t in range(accdoa.shape[0]):
        row = []
        for c in np.flatnonzero(act[t] >= threshold):
            az, el, _ = cart_to_sph(accdoa[t, c])
            row.append(SourceEstimate(float(az), float(el), float(np.exp(log_distance[t, c])), labels[c],
                                      float(act[t, c])))
        out.append(row)
    return out


#: Values per class in `seld_vector`: the ACCDOA vector (3), the log-distance, the class logit.
SELD_PER_CLASS = 5


def seld_vector(accdoa: np.ndarray, log_distance: np.ndarray, class_logits: np.ndarray) -> np.ndarray:
    """The encoder's decoded outputs as one vector per frame, what the audio-language model's
    projector reads beside the embeddings: (T, C, 3), (T, C), (T, C) -> (T, C * 5)."""
    t, c = log_distance.shape
    out = np.concatenate([accdoa, log_distance[..., None], class_logits[..., None]], axis=-1)
    return out.reshape(t, c * SELD_PER_CLASS).astype(np.float32, copy=False)


def active_spans(accdoa: np.ndarray, labels: tuple[str, ...], frame_rate_hz: float,
                 cfg: DecodeConfig | None = None) -> dict[str, tuple[float, float]]:
    """Per class that decode_clip reports: (first, last + 1) active frame, in seconds. What a
    perception-only reasoner knows of when each sound started and stopped."""
    cfg = cfg or DecodeConfig()
    on = np.linalg.norm(accdoa, axis=-1) >= cfg.activity_threshold  # (T, C)
    spans = {}
    for c in np.flatnonzero(on.sum(0) >= cfg.min_frames):
        frames = np.flatnonzero(on[:, c])
        spans[labels[c]] = (float(frames[0] / frame_rate_hz), float((frames[-1] + 1) / frame_rate_hz))
    return spans


def heard_sources(accdoa: np.ndarray, log_distance: np.ndarray, labels: tuple[str, ...], frame_rate_hz: float,
                  cfg: DecodeConfig | None = None) -> list:
    """What a perception-only listener knows of a clip: each decoded source as a SourceLabel
    (label, direction, distance) with the time span its class was active, in decode order."""
    from agent.core.scene import SourceLabel  # noqa: PLC0415

    found = decode_clip(accdoa, log_distance, labels, frame_rate_hz, cfg)
    spans = active_spans(accdoa, labels, frame_rate_hz, cfg)
    return [SourceLabel(s.label, s.azimuth_deg, s.elevation_deg, s.distance_m, *spans[s.label])
            for s in found if s.label in spans]
