"""Decode SELD frames (ACCDOA with distance) into sources: shared by the agent and training eval.

A frame's ACCDOA vector for a class has length = activity and points at the
source. A class is a source of the clip when it is active (length >= threshold)
on at least `min_frames` frames; its direction is the activity-weighted mean
vector over those frames, its distance the median over them. (A robust mean
around the frames' consensus direction was tried on validation clips: it
lowered the lateral error by 1.5 deg but raised the angular error by 1 deg.)

An encoder with several tracks per class (multi-ACCDOA, agent.core.tracks) gives one vector
per slot; the functions here take the slot labels (`slot_labels`) and decode every slot
alike. Two slots of one class whose decoded directions lie within `merge_deg` of each other
are one source heard on two tracks: the more active one is kept (the DCASE multi-ACCDOA
post-processing, with the directions compared instead of averaged). Farther apart they are
two sources with the same label. With one track every label is distinct and nothing merges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.core.errors import BinauraError
from agent.core.geometry import cart_to_sph, great_circle_deg
from agent.core.scene import SourceEstimate


@dataclass(frozen=True)
class DecodeConfig:
    activity_threshold: float = 0.5
    min_frames: int = 3  # 0.3 s at 10 frames/s
    max_sources: int = 4
    #: two slots of one class (multi-track encoders) whose directions are closer than this are
    #: one source; the more active one is kept
    merge_deg: float = 30.0


def check_slots(accdoa: np.ndarray, labels, where: str = "accdoa") -> None:
    """accdoa (T, S, 3) must have one slot per label (the slot labels of a multi-track encoder)."""
    if accdoa.ndim != 3 or accdoa.shape[1:] != (len(labels), 3):
        raise BinauraError(f"{where} must be (T, {len(labels)}, 3), one vector per slot label, got "
                           f"{accdoa.shape}; a multi-track encoder's outputs are read with its slot labels "
                           f"(agent.core.tracks.slot_labels)")


def merge_same_label(found: list[tuple[float, int, SourceEstimate]],
                     merge_deg: float) -> list[tuple[float, int, SourceEstimate]]:
    """(weight, slot, source) most weighty first -> the same without any source that lies
    within merge_deg of a weightier kept source of its own label (one source on two tracks)."""
    kept: list[tuple[float, int, SourceEstimate]] = []
    for item in found:
        s = item[2]
        if not any(k[2].label == s.label and great_circle_deg(
                k[2].azimuth_deg, k[2].elevation_deg, s.azimuth_deg, s.elevation_deg) < merge_deg for k in kept):
            kept.append(item)
    return kept


def decode_slots(accdoa: np.ndarray, log_distance: np.ndarray, labels: tuple[str, ...],
                 frame_rate_hz: float, cfg: DecodeConfig | None = None) -> list[tuple[int, SourceEstimate]]:
    """accdoa (T, S, 3), log_distance (T, S) with a label per slot -> (slot, source) of each
    clip-level source, most active first (`decode_clip` with the slot each source came from)."""
    cfg = cfg or DecodeConfig()
    check_slots(accdoa, labels)
    act = np.linalg.norm(accdoa, axis=-1)  # (T, S)
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
        found.append((float(w.sum()), int(c), SourceEstimate(
            azimuth_deg=float(az), elevation_deg=float(el), distance_m=dist, label=labels[c],
            confidence=float(w.mean()))))
    found.sort(key=lambda t: -t[0])
    found = merge_same_label(found, cfg.merge_deg)
    return [(c, s) for _, c, s in found[:cfg.max_sources]]


def decode_active(accdoa: np.ndarray, log_distance: np.ndarray, labels: tuple[str, ...],
                  frame_rate_hz: float, cfg: DecodeConfig | None = None) -> list[tuple[SourceEstimate, np.ndarray]]:
    """`decode_slots`' sources, each with its slot's active frames (T,) bool: what a source's
    renamer (agent.localize.relabel, agent.localize.namer) reads of when it sounds."""
    cfg = cfg or DecodeConfig()
    on = np.linalg.norm(accdoa, axis=-1) >= cfg.activity_threshold  # (T, S)
    return [(s, on[:, c]) for c, s in decode_slots(accdoa, log_distance, labels, frame_rate_hz, cfg)]


def decode_clip(accdoa: np.ndarray, log_distance: np.ndarray, labels: tuple[str, ...],
                frame_rate_hz: float, cfg: DecodeConfig | None = None) -> list[SourceEstimate]:
    """accdoa (T, S, 3), log_distance (T, S) -> clip-level sources, most active first. S is
    the number of slots (classes x tracks) and `labels` their slot labels."""
    return [s for _, s in decode_slots(accdoa, log_distance, labels, frame_rate_hz, cfg)]


def frame_sources(accdoa: np.ndarray, log_distance: np.ndarray, labels: tuple[str, ...],
                  threshold: float = 0.5, merge_deg: float = DecodeConfig.merge_deg) -> list[list[SourceEstimate]]:
    """Per-frame sources (for tracking and narration): (T, S, 3) -> T lists; two slots of one
    label within merge_deg in a frame are one source (the more active kept)."""
    check_slots(accdoa, labels)
    act = np.linalg.norm(accdoa, axis=-1)
    out = []
    for t in range(accdoa.shape[0]):
        row = []
        for c in np.flatnonzero(act[t] >= threshold):
            az, el, _ = cart_to_sph(accdoa[t, c])
            row.append((float(act[t, c]), int(c), SourceEstimate(
                float(az), float(el), float(np.exp(log_distance[t, c])), labels[c], float(act[t, c]))))
        if len(row) > 1 and len({s.label for _, _, s in row}) < len(row):
            kept = {id(x) for x in merge_same_label(sorted(row, key=lambda x: -x[0]), merge_deg)}
            row = [x for x in row if id(x) in kept]
        out.append([s for _, _, s in row])
    return out


#: Values per slot in `seld_vector`: the ACCDOA vector (3), the log-distance, the class logit.
SELD_PER_CLASS = 5


def seld_vector(accdoa: np.ndarray, log_distance: np.ndarray, class_logits: np.ndarray) -> np.ndarray:
    """The encoder's decoded outputs as one vector per frame, what the audio-language model's
    projector reads beside the embeddings: (T, S, 3), (T, S), (T, C) -> (T, S * 5). The class
    logits are per class; a multi-track encoder's (S = tracks x C) are repeated per track, so
    each slot carries its own class's logit."""
    t, s = log_distance.shape
    c = class_logits.shape[-1]
    if s != c:
        if c < 1 or s % c:
            raise BinauraError(f"seld_vector: {s} slots are not a whole number of tracks of {c} classes")
        class_logits = np.tile(class_logits, (1, s // c))
    out = np.concatenate([accdoa, log_distance[..., None], class_logits[..., None]], axis=-1)
    return out.reshape(t, s * SELD_PER_CLASS).astype(np.float32, copy=False)


def slot_spans(accdoa: np.ndarray, frame_rate_hz: float,
               cfg: DecodeConfig | None = None) -> dict[int, tuple[float, float]]:
    """Per slot that is active long enough to be decoded: (first, last + 1) active frame, in
    seconds, keyed by slot index. What a perception-only reasoner knows of when each sound
    started and stopped."""
    cfg = cfg or DecodeConfig()
    on = np.linalg.norm(accdoa, axis=-1) >= cfg.activity_threshold  # (T, S)
    spans = {}
    for c in np.flatnonzero(on.sum(0) >= cfg.min_frames):
        frames = np.flatnonzero(on[:, c])
        spans[int(c)] = (float(frames[0] / frame_rate_hz), float((frames[-1] + 1) / frame_rate_hz))
    return spans


def active_spans(accdoa: np.ndarray, labels: tuple[str, ...], frame_rate_hz: float,
                 cfg: DecodeConfig | None = None) -> dict[str, tuple[float, float]]:
    """Per label that decode_clip may report: (first, last + 1) active frame, in seconds; with
    several tracks, from the first to the last frame any slot of the label is active
    (`slot_spans` keeps the slots apart, as `heard_sources` does). One track: per class."""
    check_slots(accdoa, labels)
    spans: dict[str, tuple[float, float]] = {}
    for c, (a, b) in slot_spans(accdoa, frame_rate_hz, cfg).items():
        old = spans.get(labels[c], (a, b))
        spans[labels[c]] = (min(a, old[0]), max(b, old[1]))
    return spans


def heard_sources(accdoa: np.ndarray, log_distance: np.ndarray, labels: tuple[str, ...], frame_rate_hz: float,
                  cfg: DecodeConfig | None = None) -> list:
    """What a perception-only listener knows of a clip: each decoded source as a SourceLabel
    (label, direction, distance) with the time span its slot was active, in decode order.
    labels: one per slot (agent.core.tracks.slot_labels)."""
    from agent.core.scene import SourceLabel  # noqa: PLC0415

    found = decode_slots(accdoa, log_distance, labels, frame_rate_hz, cfg)
    spans = slot_spans(accdoa, frame_rate_hz, cfg)
    return [SourceLabel(s.label, s.azimuth_deg, s.elevation_deg, s.distance_m, *spans[c])
            for c, s in found if c in spans]
