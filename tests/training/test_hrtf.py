"""HRTF orientation and interpolation against physical ground truth."""

import numpy as np
import pytest

from training.synth.heads import ALL_HEADS, HELD_OUT_HEADS, TRAIN_HEADS, make_head
from training.synth.hrtf import onset_samples


def ear_cues(hrir):
    onset = onset_samples(hrir[None])[0]
    energy = (hrir.astype(np.float64) ** 2).sum(axis=1)
    return onset, 10 * np.log10(energy[0] / energy[1])


def test_kemar_has_710_directions(kemar):
    assert len(kemar.azimuth_deg) == 710
    assert kemar.elevation_deg.min() == -40 and kemar.elevation_deg.max() == 90


@pytest.mark.parametrize("head_name", ALL_HEADS)
def test_source_on_the_left_reaches_the_left_ear_first_and_louder(head_name):
    head = make_head(head_name, 48_000, np.random.default_rng(0))
    aligned, delays = head.interpolate([90.0], [0.0])
    assert delays[0, 0] < delays[0, 1] - 10  # > 0.2 ms earlier at the left ear
    energy = (aligned[0].astype(np.float64) ** 2).sum(axis=1)
    assert 10 * np.log10(energy[0] / energy[1]) > 5.0


def test_mirrored_azimuths_swap_the_ears(kemar):
    for az, el in ((30.0, 0.0), (75.0, 20.0), (120.0, -10.0)):
        left = kemar.hrir(az, el)
        right = kemar.hrir(-az, el)
        (on_l, ild_l), (on_r, ild_r) = ear_cues(left), ear_cues(right)
        assert on_l[0] == pytest.approx(on_r[1], abs=0.3)
        assert ild_l == pytest.approx(-ild_r, abs=0.5)
        assert ild_l > 0


def test_interpolation_reproduces_measured_directions(kemar):
    i = np.where((kemar.azimuth_deg == 40.0) & (kemar.elevation_deg == 0.0))[0][0]
    aligned, delays = kemar.interpolate([40.0], [0.0])
    np.testing.assert_allclose(aligned[0], kemar.aligned[i], atol=1e-5)
    np.testing.assert_allclose(delays[0], kemar.delays[i], atol=1e-6)


def test_interpolated_itd_moves_continuously(kemar):
    az = np.linspace(0, 90, 37)  # finer than the 5-degree grid
    _, delays = kemar.interpolate(az, np.zeros_like(az))
    itd = delays[:, 1] - delays[:, 0]
    assert np.all(np.diff(itd) > -0.5)  # grows with azimuth up to the side (within half a sample)
    assert itd[-1] > 25  # about 0.6-0.9 ms at 90 degrees


def test_below_the_lowest_ring_is_clamped(kemar):
    a1, d1 = kemar.interpolate([30.0], [-70.0])
    a2, d2 = kemar.interpolate([30.0], [-40.0])
    np.testing.assert_allclose(a1, a2, atol=1e-6)


def test_held_out_head_is_not_a_training_head():
    assert set(HELD_OUT_HEADS).isdisjoint(TRAIN_HEADS)
    xl = make_head("kemar-xl", 48_000)
    base = make_head("kemar-mit", 48_000)
    _, d_xl = xl.interpolate([90.0], [0.0])
    _, d_b = base.interpolate([90.0], [0.0])
    assert (d_xl[0, 1] - d_xl[0, 0]) == pytest.approx(1.12 * (d_b[0, 1] - d_b[0, 0]), rel=1e-6)


@pytest.mark.parametrize("scale", [0.86, 1.16])
def test_scaled_kemar_scales_the_itd_and_moves_the_pinna_notches(scale):
    base = make_head("kemar-mit", 48_000)
    head = make_head(f"kemar@{scale}", 48_000)
    a_b, d_b = base.interpolate([90.0], [0.0])
    a_s, d_s = head.interpolate([90.0], [0.0])
    assert (d_s[0, 1] - d_s[0, 0]) == pytest.approx(scale * (d_b[0, 1] - d_b[0, 0]), rel=1e-6)
    # the near ear's spectrum moves to 1/scale of its frequencies: its centroid above 4 kHz with it
    f = np.fft.rfftfreq(4096, 1 / 48_000)
    band = (f > 4_000) & (f < 16_000)

    def centroid(h):
        p = np.abs(np.fft.rfft(h, 4096)) ** 2
        return (f[band] * p[band]).sum() / p[band].sum()

    ratio = centroid(a_s[0, 0]) / centroid(a_b[0, 0])
    assert (ratio < 1.0) == (scale > 1.0)


def test_diffuse_coherence_is_high_at_low_and_low_at_high_frequencies(kemar):
    f, coh = kemar.diffuse_coherence
    assert coh[(f > 50) & (f < 200)].mean() > 0.8
    assert np.abs(coh[(f > 3000)]).mean() < 0.2


def test_fast_face_search_matches_exhaustive_search(kemar):
    rng = np.random.default_rng(5)
    az, el = rng.uniform(-180, 180, 3000), np.rad2deg(np.arcsin(rng.uniform(-0.64, 1.0, 3000)))
    idx, w = kemar.weights(az, el)
    from agent.core.geometry import sph_to_cart

    q = sph_to_cart(az, el)
    # The weights reconstruct the query direction's ray: sum_k w_k v_k is parallel to q.
    recon = np.einsum("qk,qkc->qc", w, kemar.dirs[idx])
    recon /= np.linalg.norm(recon, axis=1, keepdims=True)
    np.testing.assert_allclose(recon, q, atol=1e-9)
    assert w.min() >= 0
