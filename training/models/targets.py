"""SELD training targets from scene labels: ACCDOA vectors, log distances, activity."""

from __future__ import annotations

import math

import numpy as np

from agent.core.features import FeatureConfig
from agent.core.geometry import sph_to_cart
from agent.core.rotation import scene_head_path
from agent.core.scene import Scene
from agent.core.tracks import check_tracks


def output_frame_times_s(n_out: int, time_pool: int, feat: FeatureConfig) -> np.ndarray:
    """Centre time of each output frame: the middle of the input frames it pools."""
    return feat.frame_centre_s(np.arange(n_out) * time_pool + (time_pool - 1) / 2)


def seld_targets(scene: Scene, n_out: int, time_pool: int, feat: FeatureConfig, labels: tuple[str, ...],
                 log_distance_range: tuple[float, float],
                 tracks: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> accdoa (n_out, S, 3) = activity x unit direction, log_distance (n_out, S),
    active (n_out, S) bool, with S = tracks x C slots (slot = track * C + class). A source is
    active on frames whose centre lies in [onset, offset). Sources of a class outside `labels`
    are left out. With several tracks the sources of one class fill tracks 0, 1, ... in onset
    order (those beyond `tracks` are left out); with one track every source is written to its
    class's slot in the scene's order, as before tracks existed. In a scene whose head
    turns (`head_orientation`, docs/turning.md) each frame's direction is where the source is
    heard at that frame's time (the dataset gives it in the head frame at t = 0)."""
    tracks = check_tracks(tracks)
    index = {name: i for i, name in enumerate(labels)}
    n_slots = tracks * len(labels)
    accdoa = np.zeros((n_out, n_slots, 3), np.float32)
    logd = np.zeros((n_out, n_slots), np.float32)
    active = np.zeros((n_out, n_slots), bool)
    t = output_frame_times_s(n_out, time_pool, feat)
    path = scene_head_path(scene)
    if path is not None and path.is_still:
        path = None
    sources = scene.sources if tracks == 1 else sorted(scene.sources, key=lambda s: s.onset_s)  # stable
    filled: dict[int, int] = {}  # class -> tracks taken
    for s in sources:
        c = index.get(s.label)
        if c is None:
            continue
        if tracks > 1:
            k = filled.get(c, 0)
            if k >= tracks:
                continue
            filled[c] = k + 1
            c += k * len(labels)
        on = (t >= s.onset_s) & (t < s.offset_s)
        if path is None:
            accdoa[on, c] = sph_to_cart(s.azimuth_deg, s.elevation_deg)
        elif on.any():
            accdoa[on, c] = sph_to_cart(*path.head_direction(s.azimuth_deg, s.elevation_deg, t[on]))
        active[on, c] = True
        if s.distance_m is not None:
            logd[on, c] = np.clip(math.log(s.distance_m), *log_distance_range)
    return accdoa, logd, active
