"""Head orientation: rotations, quaternions, and a scene's head-orientation track (contract).

The head's orientation is given in a fixed world frame (x, y, z as the coordinate
convention: +x ahead, +y left, +z up) by three angles in degrees, applied in this order:
yaw about z (+ = turn left, counter-clockwise seen from above, as azimuth), pitch about
the head's y axis (+ = nose up), roll about the head's x axis (+ = left ear up, the head
tilts to the right). R = Rz(yaw) Ry(-pitch) Rx(roll) maps head-frame vectors to the world
frame: v_world = R v_head, v_head = R^T v_world. A quaternion (w, x, y, z) means the same
rotation. With the head turned 40 deg left, a source at world azimuth 150 is heard at
150 - 40 = 110 (agent.core.geometry.rotate_listener_deg agrees).

scenes.jsonl's optional `head_orientation` key is a list of samples
{"t_s", "yaw_deg", "pitch_deg", "roll_deg"} with t_s strictly increasing; between samples
the angles are interpolated linearly (yaw is not wrapped: two samples differ by less than
180 deg), before the first and after the last they hold. Source positions are in the
head frame at t = 0 (docs/turning.md), so a scene without the key keeps its meaning.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.core.errors import BinauraError
from agent.core.geometry import cart_to_sph, sph_to_cart

HEAD_ORIENTATION_KEY = "head_orientation"
SAMPLE_KEYS = ("t_s", "yaw_deg", "pitch_deg", "roll_deg")


def ypr_to_matrix(yaw_deg, pitch_deg=0.0, roll_deg=0.0) -> np.ndarray:
    """Head-to-world rotation(s) (..., 3, 3) for angles in degrees (broadcast together)."""
    y, p, r = np.broadcast_arrays(*(np.deg2rad(np.asarray(a, dtype=np.float64))
                                    for a in (yaw_deg, pitch_deg, roll_deg)))
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    # Rz(y) @ Ry(-p) @ Rx(r), written out
    m = np.stack([
        np.stack([cy * cp, -sy * cr - cy * sp * sr, sy * sr - cy * sp * cr], -1),
        np.stack([sy * cp, cy * cr - sy * sp * sr, -cy * sr - sy * sp * cr], -1),
        np.stack([sp, cp * sr, cp * cr], -1),
    ], -2)
    return m


def matrix_to_ypr(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of ypr_to_matrix: (yaw in (-180, 180], pitch in [-90, 90], roll) in degrees."""
    m = np.asarray(m, dtype=np.float64)
    pitch = np.rad2deg(np.arcsin(np.clip(m[..., 2, 0], -1.0, 1.0)))
    yaw = np.rad2deg(np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    roll = np.rad2deg(np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    return yaw, pitch, roll


def quat_to_matrix(q) -> np.ndarray:
    """Unit quaternion(s) (..., 4) as (w, x, y, z) -> rotation(s) (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_mul(a, b) -> np.ndarray:
    """Hamilton product of quaternions (..., 4) as (w, x, y, z): the rotation b, then a."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def quat_from_ypr(yaw_deg, pitch_deg=0.0, roll_deg=0.0) -> np.ndarray:
    """(w, x, y, z) of Rz(yaw) Ry(-pitch) Rx(roll)."""
    y, p, r = (np.deg2rad(np.asarray(a, dtype=np.float64)) / 2 for a in (yaw_deg, pitch_deg, roll_deg))
    zero = np.zeros_like(y + p + r)
    qz = np.stack([np.cos(y) + zero, zero, zero, np.sin(y) + zero], -1)
    qy = np.stack([np.cos(p) + zero, zero, -np.sin(p) + zero, zero], -1)
    qx = np.stack([np.cos(r) + zero, np.sin(r) + zero, zero, zero], -1)
    return quat_mul(quat_mul(qz, qy), qx)


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (deg) of the rotation taking rotation matrix a to b."""
    c = (np.trace(np.asarray(a).T @ np.asarray(b)) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(c, -1.0, 1.0))))


def to_head(m: np.ndarray, v_world: np.ndarray) -> np.ndarray:
    """World-frame vector(s) (..., 3) -> head frame under head-to-world rotation m (3, 3)."""
    return np.asarray(v_world) @ np.asarray(m)


def to_world(m: np.ndarray, v_head: np.ndarray) -> np.ndarray:
    """Head-frame vector(s) (..., 3) -> world frame under head-to-world rotation m (3, 3)."""
    return np.asarray(v_head) @ np.asarray(m).T


@dataclass(frozen=True)
class HeadPath:
    """A head-orientation track: samples (N,) of time (s) and yaw, pitch, roll (deg)."""

    t_s: np.ndarray
    yaw_deg: np.ndarray
    pitch_deg: np.ndarray
    roll_deg: np.ndarray

    @classmethod
    def still(cls, duration_s: float) -> HeadPath:
        z = np.zeros(2)
        return cls(np.array([0.0, float(duration_s)]), z, z.copy(), z.copy())

    def angles(self, t_s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(yaw, pitch, roll) in degrees at time(s) t_s, linearly interpolated, held at the ends."""
        return tuple(np.interp(t_s, self.t_s, a) for a in (self.yaw_deg, self.pitch_deg, self.roll_deg))

    def matrices(self, t_s) -> np.ndarray:
        """Head-to-world rotation(s) (..., 3, 3) at time(s) t_s."""
        return ypr_to_matrix(*self.angles(t_s))

    def head_direction(self, azimuth_deg: float, elevation_deg: float, t_s):
        """Where a still source given in the t = 0 head frame is heard at time(s) t_s:
        (azimuth_deg, elevation_deg) arrays."""
        v = to_world(self.matrices(0.0), sph_to_cart(azimuth_deg, elevation_deg))
        m = self.matrices(np.asarray(t_s, dtype=np.float64))
        az, el, _ = cart_to_sph(np.einsum("...ji,j->...i", m, v))
        return az, el

    @property
    def is_still(self) -> bool:
        return bool(np.ptp(self.yaw_deg) == 0 and np.ptp(self.pitch_deg) == 0 and np.ptp(self.roll_deg) == 0)

    def turn_range_deg(self) -> float:
        """The largest angle between any two orientations of the track (deg)."""
        m = ypr_to_matrix(self.yaw_deg, self.pitch_deg, self.roll_deg)
        c = (np.einsum("aji,bji->ab", m, m) - 1.0) / 2.0  # trace(Ma^T Mb)
        return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))).max())

    def to_json(self) -> list[dict[str, float]]:
        return [{"t_s": round(float(t), 4), "yaw_deg": round(float(y), 3), "pitch_deg": round(float(p), 3),
                 "roll_deg": round(float(r), 3)}
                for t, y, p, r in zip(self.t_s, self.yaw_deg, self.pitch_deg, self.roll_deg, strict=True)]


def head_path_from_json(obj: Any, where: str = HEAD_ORIENTATION_KEY) -> tuple[HeadPath | None, list[str]]:
    """Parse and check a `head_orientation` value (module docstring). Returns (path, problems)."""
    expect = (f"'{where}' must be a list of objects {{t_s, yaw_deg, pitch_deg, roll_deg}} with t_s "
              f"strictly increasing and >= 0")
    if not isinstance(obj, list) or not obj:
        return None, [f"{expect}, got {str(obj)[:60]!r}"]
    cols: list[list[float]] = [[], [], [], []]
    problems = []
    for i, s in enumerate(obj):
        if not isinstance(s, dict) or any(k not in s for k in ("t_s", "yaw_deg")):
            problems.append(f"{where}[{i}]: expected an object with t_s and yaw_deg (pitch_deg, roll_deg "
                            f"default 0), got {s!r}")
            continue
        for c, k in enumerate(SAMPLE_KEYS):
            v = s.get(k, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                problems.append(f"{where}[{i}].{k} must be a finite number, got {v!r}")
                v = 0.0
            cols[c].append(float(v))
    if problems:
        return None, problems
    t = np.array(cols[0])
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        return None, [f"{expect}; got t_s {t[:8].tolist()}..."]
    if np.any(np.abs(np.diff(cols[1])) >= 180):
        return None, [f"{where}: yaw_deg jumps by 180 deg or more between two samples; yaw is not wrapped, "
                      f"sample it densely enough"]
    if np.any(np.abs(cols[2]) > 90):
        return None, [f"{where}: pitch_deg must be within [-90, 90]"]
    return HeadPath(t, *(np.array(c) for c in cols[1:])), []


def scene_head_path(scene) -> HeadPath | None:
    """The head path of an agent.core.scene.Scene (None for a still head); raises
    BinauraError naming the problem when the scene's value breaks the contract."""
    obj = scene.extra.get(HEAD_ORIENTATION_KEY)
    if obj is None:
        return None
    path, problems = head_path_from_json(obj)
    if problems:
        raise BinauraError(f"scene {scene.id}: " + "; ".join(problems))
    return path


def scene_heard_at(scene, t_s: float | None = None):
    """The scene with each source where it is heard at time t_s (default: the clip's end),
    in the head frame of that moment; a scene whose head holds still comes back as it is.
    Questions about a turning scene speak in this frame (the listener's head when asked)."""
    path = scene_head_path(scene)
    if path is None or path.is_still:
        return scene
    t = scene.duration_s if t_s is None else float(t_s)
    sources = []
    for s in scene.sources:
        az, el = path.head_direction(s.azimuth_deg, s.elevation_deg, t)
        sources.append(dataclasses.replace(s, azimuth_deg=round(float(az), 3), elevation_deg=round(float(el), 3)))
    return dataclasses.replace(scene, sources=sources)

