"""Scenes with a moving head: head-orientation paths and the time-varying binaural render.

A scene's head path (agent.core.rotation.HeadPath) is drawn per scene: still, a slow sweep,
a quick glance of 20-90 deg (and often back), or robot-like steps, mostly yaw with some
pitch. Sources stay still in the world; their positions are given in the head frame at
t = 0 (the dataset contract), so each path's direction as heard moves as the head turns.

Rendering follows the head physically. The output is cut into keys every KEY_HOP_S; each key
gets the response of the directions heard at its time (the direct path and, in a room, every
early reflection's image source rotated into the head frame of that moment), and the keys'
outputs are cross-faded with triangular windows that sum to one:
y(t) = sum_k w_k(t) (x * h_k)(t): the filter is linearly interpolated in time, with no
discontinuity for any path (tests/training/test_turning.py measures it). Keys whose
directions are identical (the head holds) are merged into one run and convolved at once.
The late reverberation is diffuse and isotropic, so a head turning in place does not
change it: it is convolved once, as in the static render. The random generator is used
exactly as the static render uses it, so a scene renders the same as without a path until
the head first moves.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import oaconvolve

from agent.core.audio import SPEED_OF_SOUND_M_S
from agent.core.geometry import cart_to_sph, sph_to_cart
from agent.core.rotation import HeadPath, to_world, ypr_to_matrix
from training.synth.heads import Head
from training.synth.hrtf import HRIR_TAPS
from training.synth.room import (
    RoomGeometry,
    image_sources,
    late_tail,
    near_field_gains,
    render_paths,
)

#: Time between render keys: at 500 deg/s (a quick glance's peak) the direction moves
#: 2.5 deg per key, and the crossfade spans one key on each side.
KEY_HOP_S = 0.005
#: Head-path kinds and how often each is drawn.
PATH_KINDS = {"still": 0.15, "sweep": 0.3, "glance": 0.35, "steps": 0.2}
#: Dense sampling of a drawn path before it is simplified for the dataset line.
PATH_RATE_HZ = 100.0
#: A stored path reproduces the drawn one within this (deg).
PATH_TOLERANCE_DEG = 0.05


def min_jerk(tau: np.ndarray) -> np.ndarray:
    """0 -> 1 over tau in [0, 1] with zero velocity and acceleration at both ends
    (Flash & Hogan 1985: how people move their heads and arms)."""
    u = np.clip(tau, 0.0, 1.0)
    return u**3 * (10 - 15 * u + 6 * u * u)


def _move(t: np.ndarray, t0: float, dur: float, amount: float) -> np.ndarray:
    return amount * min_jerk((t - t0) / max(dur, 1e-3))


def sample_head_path(rng: np.random.Generator, duration_s: float, kind: str | None = None) -> HeadPath:
    """Draw a head path over [0, duration_s] starting at yaw = pitch = roll = 0.
    kind: one of PATH_KINDS (None draws one by PATH_KINDS' weights)."""
    if kind is None:
        names = list(PATH_KINDS)
        kind = names[int(rng.choice(len(names), p=np.array(list(PATH_KINDS.values())) / sum(PATH_KINDS.values())))]
    if kind == "still":
        return HeadPath.still(duration_s)
    if kind not in PATH_KINDS:
        raise ValueError(f"unknown head-path kind {kind!r}; expected one of {list(PATH_KINDS)}")
    t = np.arange(0.0, duration_s + 1e-9, 1.0 / PATH_RATE_HZ)
    yaw, pitch = np.zeros_like(t), np.zeros_like(t)
    sign = float(rng.choice([-1.0, 1.0]))
    d = duration_s
    if kind == "sweep":  # a slow, steady turn: 15-45 deg/s over 30-120 deg
        t0 = float(rng.uniform(0.2, 0.3 * d))
        amount = float(rng.uniform(30.0, 120.0))
        dur = min(amount / float(rng.uniform(15.0, 45.0)), d - t0 - 0.1)
        yaw += _move(t, t0, dur, sign * amount)
    elif kind == "glance":  # a quick look of 20-90 deg, held, often back
        t0 = float(rng.uniform(0.3, 0.45 * d))
        amount = float(rng.uniform(20.0, 90.0))
        dur = float(rng.uniform(0.25, 0.6))
        yaw += _move(t, t0, dur, sign * amount)
        back = t0 + dur + float(rng.uniform(0.5, 1.5))
        if rng.random() < 0.6 and back + dur < d:
            yaw -= _move(t, back, dur, sign * amount)
    else:  # steps: a robot turning its head in fast steps, held between
        t_next = float(rng.uniform(0.2, 0.3 * d))
        while t_next < d - 0.4:
            if rng.random() < 0.25:
                sign = -sign
            dur = float(rng.uniform(0.15, 0.3))
            yaw += _move(t, t_next, dur, sign * float(rng.uniform(15.0, 45.0)))
            t_next += dur + float(rng.uniform(0.4, 1.2))
    if rng.random() < 0.5:  # some pitch: a nod up or down of 5-20 deg
        t0 = float(rng.uniform(0.0, 0.7 * d))
        pitch += _move(t, t0, float(rng.uniform(0.3, 1.0)), float(rng.choice([-1.0, 1.0]) * rng.uniform(5.0, 20.0)))
    return simplify(HeadPath(t, yaw, pitch, np.zeros_like(t)))


def simplify(path: HeadPath, tol_deg: float = PATH_TOLERANCE_DEG) -> HeadPath:
    """The fewest samples (a greedy pass) whose linear interpolation stays within tol_deg of
    every sample of `path`: a dataset line stores a few dozen samples, not hundreds."""
    t = path.t_s
    a = np.stack([path.yaw_deg, path.pitch_deg, path.roll_deg])
    keep, i = [0], 0
    while i < len(t) - 1:
        j = i + 1
        while j + 1 < len(t):
            seg = slice(i, j + 2)
            w = (t[seg] - t[i]) / (t[j + 1] - t[i])
            line = a[:, i, None] + (a[:, j + 1, None] - a[:, i, None]) * w
            if np.abs(line - a[:, seg]).max() > tol_deg:
                break
            j += 1
        keep.append(j)
        i = j
    k = np.array(keep)
    # rounded as the dataset line stores them, so the audio follows exactly the stored path
    return HeadPath(np.round(t[k], 4), *(np.round(x[k], 3) for x in a))


def _runs(az: np.ndarray, el: np.ndarray) -> list[tuple[int, int]]:
    """Runs [k0, k1] of consecutive keys whose directions (K, P) are all identical."""
    same = np.all(az[1:] == az[:-1], axis=1) & np.all(el[1:] == el[:-1], axis=1)
    starts = [0] + [k + 1 for k in np.flatnonzero(~same)]
    ends = [s - 1 for s in starts[1:]] + [len(az) - 1]
    return list(zip(starts, ends, strict=True))


def time_varying_convolve(x: np.ndarray, irs, runs: list[tuple[int, int]], hop: int, n_out: int) -> np.ndarray:
    """y(t) = sum_k w_k(t) (x * h_k)(t), keys k at t = k * hop, w_k triangular of half-width
    hop (they sum to one). x: (T,) mono; irs(k) -> (2, L) the response of key k; runs: the
    keys [k0, k1] sharing one response, in order, covering every key (their windows add up
    to a trapezoid; the first run has no rising edge, the last no falling one). (2, n_out)."""
    y = np.zeros((2, n_out), dtype=np.float64)
    last = runs[-1][1]
    for k0, k1 in runs:
        a = (k0 - 1) * hop + 1 if k0 > 0 else 0  # the window is 0 at (k0 - 1) hop
        b = min(n_out, (k1 + 1) * hop) if k1 < last else n_out
        if a >= b:
            continue
        h = irs(k0)
        lo = max(0, a - h.shape[1] + 1)
        seg = oaconvolve(x[None, lo:min(len(x), b)], h, axes=1)[:, a - lo:b - lo]
        tt = np.arange(a, a + seg.shape[1], dtype=np.float64)
        w = np.ones_like(tt)
        if k0 > 0:
            w = np.minimum(w, (tt - (k0 - 1) * hop) / hop)
        if k1 < last:
            w = np.minimum(w, ((k1 + 1) * hop - tt) / hop)
        y[:, a:a + seg.shape[1]] += seg * w
    return y.astype(np.float32)


def render_turning_source(head: Head, room: RoomGeometry | None, azimuth_deg: float, elevation_deg: float,
                          distance_m: float, dry: np.ndarray, rng: np.random.Generator, path: HeadPath,
                          onset_s: float) -> np.ndarray:
    """One still source heard by a moving head: (2, len(dry) + L - 1) float32, output sample i
    at scene time onset_s + i / rate. The source's position is in the t = 0 head frame."""
    rate = head.rate_hz
    if room is None:
        az0, el0 = np.array([azimuth_deg], dtype=np.float64), np.array([elevation_deg], dtype=np.float64)
        dirs0 = sph_to_cart(az0, el0)
        dist = np.array([distance_m])
        gains = np.array([1.0 / max(distance_m, 0.1)])
        orders = np.zeros(1, dtype=int)
        n_ir = int(distance_m / SPEED_OF_SOUND_M_S * rate) + 2 * HRIR_TAPS
        tail = None
    else:  # as room.binaural_rir, with the early paths' directions kept as vectors
        images, damping, orders = image_sources(room, room.to_room(azimuth_deg, elevation_deg, distance_m))
        az0, el0, dist = room.to_head(images)
        dirs0 = sph_to_cart(az0, el0)
        gains = damping / np.maximum(dist, 0.1)
        gains[orders == 0] = 1.0 / max(distance_m, 0.1)
        last = orders == orders.max()
        tail_start_s = float(np.median(dist[last]) / SPEED_OF_SOUND_M_S) if last.any() else 0.02
        n_ir = int((tail_start_s + room.rt60_s * 1.05) * rate) + HRIR_TAPS
        tail = late_tail(head, rng, room.rt60_s, room.volume_m3, tail_start_s, n_ir)
        # the early part ends where the tail is in: beyond, every path is in the tail
        n_early = min(n_ir, int((float(dist.max()) / SPEED_OF_SOUND_M_S) * rate) + 2 * HRIR_TAPS)
        n_ir = n_early
    hop = max(1, int(round(KEY_HOP_S * rate)))
    n_out = len(dry) + n_ir - 1
    n_keys = (n_out - 1) // hop + 2
    t_keys = onset_s + np.arange(n_keys) * hop / rate
    # head-frame directions of every path at every key: R(t)^T R(0) v
    world = to_world(ypr_to_matrix(*path.angles(0.0)), dirs0)  # (P, 3)
    m = ypr_to_matrix(*path.angles(t_keys))  # (K, 3, 3)
    az, el, _ = cart_to_sph(np.einsum("kji,pj->kpi", m, world))
    az, el = np.atleast_2d(az), np.atleast_2d(el)
    at_start = np.all(m == ypr_to_matrix(*path.angles(0.0)), axis=(1, 2))  # exactly: no rounding there
    az[at_start], el[at_start] = az0, el0
    direct = orders == 0

    def ir(k: int) -> np.ndarray:
        nf = np.ones((len(gains), 2), dtype=np.float32)
        nf[direct] = near_field_gains(float(az[k, direct][0]), float(el[k, direct][0]), distance_m)
        return render_paths(head, az[k], el[k], dist, gains, n_ir, near_field=nf)

    wet = time_varying_convolve(dry, ir, _runs(az, el), hop, n_out)
    if tail is not None:  # diffuse and isotropic: the same whichever way the head faces
        late = oaconvolve(dry[None, :], tail, axes=1)
        full = np.zeros((2, late.shape[1]), dtype=np.float32)
        full[:, :n_out] += wet
        wet = full + late.astype(np.float32)
    return wet
