"""The coordinate convention (contract) and the geometry every module shares.

Head-centred: the listener faces +x, +y is the left ear, +z is up (SOFA/AmbiX).
azimuth_deg is counter-clockwise seen from above, 0 = ahead, +90 = left,
-90 = right, 180 = behind, reported in (-180, 180]. elevation_deg is +90 up,
-90 down. distance_m is from the centre of the head.
"""

from __future__ import annotations

import numpy as np

CONVENTION_VERSION = "binaura-coords-1 (x front, y left, z up; azimuth CCW in (-180, 180])"

#: 8 horizontal sectors (45 deg wide) centred on these azimuths.
SECTORS: tuple[tuple[str, float], ...] = (
    ("front", 0.0),
    ("front-left", 45.0),
    ("left", 90.0),
    ("back-left", 135.0),
    ("back", 180.0),
    ("back-right", -135.0),
    ("right", -90.0),
    ("front-right", -45.0),
)
SECTOR_NAMES = tuple(name for name, _ in SECTORS)
#: Elevation classes: above / level / below, split at +-ELEVATION_LEVEL_DEG.
ELEVATION_LEVEL_DEG = 15.0
#: Distance bins (upper edges, metres) and their names.
DISTANCE_BIN_EDGES_M = (1.0, 2.0, 3.5)
DISTANCE_BIN_NAMES = ("within 1 m", "1 to 2 m", "2 to 3.5 m", "beyond 3.5 m")


def wrap_azimuth_deg(az):
    """Wrap azimuth(s) into (-180, 180]."""
    a = np.mod(np.asarray(az, dtype=np.float64) + 180.0, 360.0) - 180.0
    a = np.where(a == -180.0, 180.0, a)
    return float(a) if np.ndim(a) == 0 else a


def sph_to_cart(azimuth_deg, elevation_deg, distance_m=1.0) -> np.ndarray:
    """Spherical (deg, deg, m) to Cartesian (..., 3) in the head frame."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    r = np.asarray(distance_m, dtype=np.float64)
    return np.stack(
        [r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=-1
    )


def cart_to_sph(xyz) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cartesian (..., 3) to (azimuth_deg in (-180, 180], elevation_deg, distance_m)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    r = np.sqrt(x * x + y * y + z * z)
    az = wrap_azimuth_deg(np.rad2deg(np.arctan2(y, x)))
    el = np.rad2deg(np.arcsin(np.clip(z / np.maximum(r, 1e-12), -1.0, 1.0)))
    return az, el, r


def great_circle_deg(az1, el1, az2, el2):
    """Angle between two directions on the unit sphere, in degrees (0..180)."""
    a1, e1 = np.deg2rad(az1), np.deg2rad(el1)
    a2, e2 = np.deg2rad(az2), np.deg2rad(el2)
    # Haversine form: numerically stable for small angles.
    h = np.sin((e2 - e1) / 2) ** 2 + np.cos(e1) * np.cos(e2) * np.sin((a2 - a1) / 2) ** 2
    d = np.rad2deg(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))
    return float(d) if np.ndim(d) == 0 else d


def azimuth_diff_deg(az1, az2):
    """Signed smallest difference az1 - az2 wrapped into (-180, 180]."""
    return wrap_azimuth_deg(np.asarray(az1) - np.asarray(az2))


def mirror_front_back_deg(az):
    """Mirror an azimuth across the ear (y) axis: x -> -x, i.e. az -> 180 - az.

    Interaural time and level differences are (nearly) identical for a
    direction and its mirror, which is why two ears confuse front and back.
    """
    return wrap_azimuth_deg(180.0 - np.asarray(az, dtype=np.float64))


def lateral_angle_deg(az, el=0.0):
    """Angle from the median plane (interaural-polar lateral angle), -90..90, + = left."""
    v = sph_to_cart(az, el)
    d = np.rad2deg(np.arcsin(np.clip(v[..., 1], -1.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d


def rotate_listener_deg(az, yaw_deg):
    """Azimuth of a fixed source after the listener turns by yaw_deg (+ = turn left)."""
    return wrap_azimuth_deg(np.asarray(az, dtype=np.float64) - yaw_deg)


def sector_of(az: float) -> str:
    """Name of the 45-degree sector holding azimuth az."""
    idx = int(np.floor(np.mod(az + 22.5, 360.0) / 45.0)) % 8
    # SECTORS goes CCW from front: 0, 45, 90, 135, 180, -135, -90, -45.
    return SECTORS[idx][0]


def sector_centre_deg(name: str) -> float:
    for n, c in SECTORS:
        if n == name:
            return c
    raise ValueError(f"unknown sector {name!r}; expected one of {SECTOR_NAMES}")


def elevation_class(el: float) -> str:
    if el > ELEVATION_LEVEL_DEG:
        return "above"
    if el < -ELEVATION_LEVEL_DEG:
        return "below"
    return "level"


def elevation_name(el: float) -> str:
    """The benchmark's elevation words: far above (> 35 deg), above, at ear level, below."""
    if el > 35:
        return "far above"
    if el > ELEVATION_LEVEL_DEG:
        return "above"
    if el >= -ELEVATION_LEVEL_DEG:
        return "at ear level"
    return "below"


def distance_bin(d: float) -> str:
    for edge, name in zip(DISTANCE_BIN_EDGES_M, DISTANCE_BIN_NAMES):
        if d < edge:
            return name
    return DISTANCE_BIN_NAMES[-1]


def side_of(az: float) -> str:
    """'left', 'right' or 'centre' (within 5 degrees of the median plane)."""
    lat = lateral_angle_deg(az)
    if abs(lat) < 5.0:
        return "centre"
    return "left" if lat > 0 else "right"
