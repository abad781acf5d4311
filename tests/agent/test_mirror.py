"""Mirror test-time averaging: the plain and mirrored passes combined as a Cartesian mean or on
the cone of confusion (agent/localize/mirror.py, docs/encoder.md, issue 22)."""

import json
import shutil

import numpy as np
import pytest

from agent.core.errors import BinauraError
from agent.core.geometry import cart_to_sph, lateral_angle_deg, mirror_front_back_deg, sph_to_cart
from agent.core.seld import decode_clip
from agent.localize.encoder import DEFAULT_ENCODER_DIR, EncoderRuntime, StreamingEncoder
from agent.localize.mirror import TIE_BAND, combine_mirror, polar_mean, reflect_back

LABELS = ("speech",)


def _vec(activity, az, el=0.0):
    return (activity * sph_to_cart(az, el)).astype(np.float32)


def _as_network_gives(v):
    """A direction in the scene as heard -> what the mirror pass outputs for it (left-right mirrored)."""
    return reflect_back(v)


def _combine(plain, mirrored_back, mode):
    """One frame, one class: two passes' vectors in the scene's frame -> the combined vector."""
    acc, _ = combine_mirror(plain[None, None], np.zeros((1, 1), np.float32),
                            _as_network_gives(mirrored_back)[None, None], np.zeros((1, 1), np.float32), mode)
    return acc[0, 0]


def test_front_back_disagreement_stays_on_the_cone_of_confusion():
    """The plain pass hears a source in front at +30 deg, the mirror pass (reflected back) its
    front/back image behind at +150. The mean shrinks below both activities and swings to the ear
    axis; the polar combination keeps the lateral angle (30 deg), the mean activity as its length,
    and the side of the stronger evidence."""
    plain, mirrored = _vec(0.9, 30.0), _vec(0.8, mirror_front_back_deg(30.0))
    mean, polar = _combine(plain, mirrored, "mean"), _combine(plain, mirrored, "polar")
    assert np.linalg.norm(mean) < 0.8 * 0.6  # under the 0.5 activity threshold: the source would vanish
    az_mean, _, _ = cart_to_sph(mean)
    assert abs(lateral_angle_deg(az_mean)) > 80  # pulled towards the left ear
    assert np.linalg.norm(polar) == pytest.approx(0.85, abs=1e-5)
    az, el, _ = cart_to_sph(polar)
    assert az == pytest.approx(30.0, abs=1e-3) and el == pytest.approx(0.0, abs=1e-3)
    # the mirror pass stronger: the same cone, behind
    az_back, _, _ = cart_to_sph(_combine(_vec(0.8, 30.0), _vec(0.9, 150.0), "polar"))
    assert az_back == pytest.approx(150.0, abs=1e-3) and lateral_angle_deg(az_back) == pytest.approx(30.0, abs=1e-3)


def test_folding_keeps_height_and_the_mean_lateral_angle():
    """Elevation survives the front/back fold (z is kept), and the lateral angle is the passes' mean."""
    polar = _combine(_vec(1.0, 40.0, 20.0), _vec(0.6, mirror_front_back_deg(40.0), 20.0), "polar")
    az, el, _ = cart_to_sph(polar)
    assert az == pytest.approx(40.0, abs=1e-3) and el == pytest.approx(20.0, abs=1e-3)
    out = _combine(_vec(1.0, 30.0), _vec(1.0, 180.0 - 40.0), "polar")  # lateral 30 and 40 deg, disagreeing
    assert out[0] > 0  # the plain pass is further from the frontal plane: in front
    assert np.degrees(np.arcsin(out[1] / np.linalg.norm(out))) == pytest.approx(35.0, abs=1.0)


def test_when_the_passes_agree_polar_is_the_mean():
    rng = np.random.default_rng(0)
    plain = rng.normal(size=(50, 17, 3)).astype(np.float32)
    mirror = rng.normal(size=(50, 17, 3)).astype(np.float32)
    mirror[..., 0] = np.abs(mirror[..., 0]) * np.sign(plain[..., 0])  # the reflection back leaves x alone
    dist = rng.normal(size=(50, 17)).astype(np.float32)
    mean = combine_mirror(plain, dist, mirror, dist + 1, "mean")
    polar = combine_mirror(plain, dist, mirror, dist + 1, "polar")
    assert np.array_equal(mean[0], polar[0]) and np.array_equal(mean[1], polar[1])
    assert np.allclose(mean[1], dist + 0.5)


def test_polar_is_symmetric_and_continuous_through_a_tie():
    """Which pass is which does not matter; at an exact tie nothing favours a side (the mean's
    hedge), and the side ramps within TIE_BAND of it instead of jumping (rounding cannot flip it)."""
    a, b = _vec(0.9, 30.0), _vec(0.8, 160.0)
    assert np.allclose(polar_mean(a, b), polar_mean(b, a))
    assert polar_mean(np.float32([0.7, 0.4, 0.0]), np.float32([-0.7, 0.3, 0.1]))[0] == 0.0
    xs = [polar_mean(np.float32([1.0, 0.3, 0]), np.float32([-1.0 + d, 0.3, 0]))[0]
          for d in np.linspace(-3 * TIE_BAND, 3 * TIE_BAND, 61)]
    assert np.abs(np.diff(xs)).max() < 0.06 and xs[30] == pytest.approx(0.0, abs=1e-6)  # no jump; 0 at the tie
    assert xs[0] == pytest.approx(-(1.0 + 1.5 * TIE_BAND)) and xs[-1] == pytest.approx(1.0 - 1.5 * TIE_BAND)


def test_a_disagreeing_source_is_decoded_on_its_cone_not_lost():
    """Clip level: a source in front at +30 deg whose mirror pass says behind on 4 of 10 frames.
    The mean's shrunken frames fall under the activity threshold; polar keeps every frame."""
    plain = np.repeat(_vec(0.9, 30.0)[None, None], 10, axis=0)
    back = np.repeat(_vec(0.9, 30.0)[None, None], 10, axis=0)
    back[:4, 0] = _vec(0.7, 150.0)
    dist = np.zeros((10, 1), np.float32)
    for mode, frames in (("mean", 6), ("polar", 10)):
        acc, _ = combine_mirror(plain, dist, _as_network_gives(back), dist, mode)
        assert (np.linalg.norm(acc, axis=-1) >= 0.5).sum() == frames
        (src,) = decode_clip(acc, dist, LABELS, 10.0)
        assert src.azimuth_deg == pytest.approx(30.0, abs=0.5)


def _scene_with_disagreements():
    from training.synth.config import SynthConfig
    from training.synth.scenes import render_scene, sample_spec

    cfg = SynthConfig(split="bench", heads=("kemar-mit",), min_sources=1, max_sources=1, p_reverberant=1.0,
                      duration_s=4.0).validate()
    return render_scene(sample_spec(cfg, 5, 0), cfg)[0]  # a bird near the median plane, in a room


def test_streams_give_the_clip_frames_in_polar_mode():
    """Through the shipped encoder, on a scene where the passes disagree on front/back: the
    stateful stream and the windowed one give the whole clip's polar frames."""
    rt = EncoderRuntime(mirror_tta=True, mirror_mode="polar")
    audio = _scene_with_disagreements()
    clip = rt.run_audio(audio, 48_000)
    mean = EncoderRuntime(mirror_tta=True, mirror_mode="mean").run_audio(audio, 48_000)
    active = np.linalg.norm(clip.accdoa, axis=-1) >= 0.5
    assert (np.abs(clip.accdoa - mean.accdoa).max(-1)[active] > 0.05).sum() >= 3  # the case at issue occurs
    for stateful in (True, False):
        enc = StreamingEncoder(rt, 3, stateful=stateful)
        parts = [enc.push(audio[:, i:i + 7200]) for i in range(0, audio.shape[1], 7200)] + [enc.flush()]
        got = [p for p in parts if p is not None]
        assert np.abs(np.concatenate([p.accdoa for p in got]) - clip.accdoa).max() < 1e-4
        assert np.abs(np.concatenate([p.log_distance for p in got]) - clip.log_distance).max() < 1e-4


def test_the_manifest_names_the_mode_and_model_names_force_it(tmp_path):
    from export.registry import make_localizer

    assert EncoderRuntime().mirror_mode == "mean"  # the shipped manifest has no mirror_mode: the mean
    d = tmp_path / "enc"
    shutil.copytree(DEFAULT_ENCODER_DIR, d)
    m = json.loads((d / "encoder.json").read_text())
    (d / "encoder.json").write_text(json.dumps({**m, "mirror_mode": "polar"}))
    assert EncoderRuntime(d).mirror_mode == "polar"
    assert EncoderRuntime(d, mirror_mode="mean").mirror_mode == "mean"
    assert make_localizer(str(d)).runtime.mirror_mode == "polar"
    assert make_localizer(f"{d}:mirror").runtime.mirror_mode == "mean"
    (d / "encoder.json").write_text(json.dumps({**m, "mirror_mode": "median"}))
    with pytest.raises(BinauraError, match="expected one of mean, polar"):
        EncoderRuntime(d)
    loc = make_localizer("encoder:mirror-polar")
    assert loc.runtime.mirror_tta and loc.runtime.mirror_mode == "polar" and loc.name == "encoder:mirror-polar"
    assert make_localizer("encoder:mirror").runtime.mirror_mode == "mean"
    assert make_localizer("encoder:mirror-polar:scale=1.1").runtime.head_scale == 1.1
    for bad in ("encoder:mirror:mirror-polar", "encoder:mirror-polar:single", "encoder:polar"):
        with pytest.raises(BinauraError, match=":mirror, :mirror-polar or :single"):
            make_localizer(bad)
