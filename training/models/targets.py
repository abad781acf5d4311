"""SELD training targets from scene labels: ACCDOA vectors, log distances, activity."""

from __future__ import annotations

import math

import numpy as np

from agent.core.features import FeatureConfig
from agent.core.geometry import sph_to_cart
from agent.core.rotation import scene_head_path
from agent.core.scene import Scene


def output_frame_times_s(n_out: int, time_pool: int, feat: FeatureConfig) -> np.ndarray:
    """Centre time of each output frame: the middle of the input frames it pools."""
    return feat.frame_centre_s(np.arange(n_out) * time_pool + (time_pool - 1) / 2)


def seld_targets(scene: Scene, n_out: int, time_pool: int, feat: FeatureConfig, labels: tuple[str, ...],
                 log_distance_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> accdoa (n_out, C, 3) = activity x unit direction, log_distance (n_out, C),
    active (n_out, C) bool. A source is active on frames whose centre lies in
    [onset, offset). Sources of a class outside `labels` are left out. In a scene whose head
    turns (`head_orientation`, docs/turning.md) each frame's direction is where the source is
    heard at that frame's time (the dataset gives it in the head frame at t = 0)."""
    index = {name: i for i, name in enumerate(labels)}
    accdoa = np.zeros((n_out, len(labels), 3), np.float32)
    logd = np.zeros((n_out, len(labels)), np.float32)
    active = np.zeros((n_out, len(labels)), bool)
    t = output_frame_times_s(n_out, time_pool, feat)
    path = scene_head_path(scene)
    if path is not None and path.is_still:
        path = None
    for s in scene.sources:
        c = index.get(s.label)
        if c is None:
            continue
        on = (t >= s.onset_s) & (t < s.offset_s)
        if path is None:
            accdoa[on, c] = sph_to_cart(s.azimuth_deg, s.elevation_deg)
        elif on.any():
            accdoa[on, c] = sph_to_cart(*path.head_direction(s.azimuth_deg, s.elevation_deg, t[on]))
        active[on, c] = True
        if s.distance_m is not None:
            logd[on, c] = np.clip(math.log(s.distance_m), *log_distance_range)
    return accdoa, logd, active
