"""Combining the encoder's plain pass with its left-right mirrored pass (mirror test-time averaging).

The runtime can run each window twice: as heard, and with the ears swapped
(`agent.core.features.mirror_spatial`), which the network hears as the scene reflected
left-right. The mirror pass's ACCDOA vectors are reflected back (y -> -y) and the two
passes combined per frame and class, in one of `MIRROR_MODES`:

- "mean": the Cartesian mean of the two vectors (and of the log-distances). Where the
  passes disagree on front and back their x components cancel: the mean is shorter than
  either and points towards the ear axis.
- "polar": the combination on the cone of confusion. Each pass is an activity `a` times
  a unit vector with lateral angle L (y = sin L, from ITD and ILD, which both passes fix
  alike) and polar angle P around the ear axis (front/back is the sign of x). The side is
  decided by the summed front/back evidence a1 x1 + a2 x2; each pass is folded onto that
  side by the front/back mirror (x -> -x, P -> 180 deg - P: lateral angle and height z
  kept) and the folded vectors averaged. Where the passes agree on the side this is exactly
  "mean"; where they disagree the direction stays on the cone at the mean lateral angle,
  with the mean activity as its length. Within TIE_BAND of a perfect tie the side ramps
  linearly from back to front (through the old mean's hedge at the tie itself), so the
  result is continuous in the two passes.

Both are per-frame operations and continuous, so a stream's frames equal a whole clip's to
float rounding (a hard side decision would let rounding flip near-tied frames). docs/encoder.md
("Combining the two passes on the cone of confusion") has the reasoning and the rule that
picks the shipped default.
"""

from __future__ import annotations

import numpy as np

from agent.core.errors import BinauraError
from agent.core.tracks import align_tracks

MIRROR_MODES = ("mean", "polar")
#: "polar": the side is decided outright once the summed evidence a1 x1 + a2 x2 exceeds this
#: fraction of a1 |x1| + a2 |x2| (the evidence if both passes agreed); below it, it ramps
TIE_BAND = 0.05
#: reflects a mirror pass's vectors back into the scene as heard (left-right: y -> -y)
_REFLECT = np.array([1.0, -1.0, 1.0], np.float32)


def check_mirror_mode(mode: str, where: str = "mirror_mode") -> str:
    """The mode itself when it is one of MIRROR_MODES, else a BinauraError naming them."""
    if mode not in MIRROR_MODES:
        raise BinauraError(f"{where}: {mode!r} is not a way to combine the mirror pass; "
                           f"expected one of {', '.join(MIRROR_MODES)}")
    return mode


def reflect_back(accdoa_mirror: np.ndarray) -> np.ndarray:
    """The mirror pass's ACCDOA vectors (..., 3) in the frame of the scene as heard."""
    return accdoa_mirror * _REFLECT


def polar_mean(plain: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Two passes' ACCDOA vectors (..., 3) of one frame (the mirror one reflected back) ->
    their combination on the cone of confusion: y and z the mean, x the mean of |x| on the
    side the summed evidence picks, i.e. clip(mean x / TIE_BAND, -mean |x|, +mean |x|)."""
    out = 0.5 * (plain + mirrored)
    reach = 0.5 * (np.abs(plain[..., 0]) + np.abs(mirrored[..., 0]))  # both folded onto one side
    out[..., 0] = np.clip(out[..., 0] / TIE_BAND, -reach, reach)
    return out


def combine_mirror(accdoa: np.ndarray, log_distance: np.ndarray, accdoa_mirror: np.ndarray,
                   log_distance_mirror: np.ndarray, mode: str, tracks: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The plain pass (accdoa (T, S, 3), ln(distance / 1 m) (T, S), S = tracks x C slots) and
    the mirror pass as the network gave it (not yet reflected back) -> the combined accdoa and
    log-distance, slot by slot. With several tracks per class the mirror pass may hear a class's
    two sources on the tracks the other way round, so its tracks are first aligned to the plain
    pass's, per frame and class (agent.core.tracks.align_tracks); with one there is nothing to
    align."""
    back = reflect_back(accdoa_mirror)
    back, log_distance_mirror = align_tracks(accdoa, back, tracks, log_distance_mirror)
    combined = polar_mean(accdoa, back) if check_mirror_mode(mode) == "polar" else 0.5 * (accdoa + back)
    return combined, 0.5 * (log_distance + log_distance_mirror)
