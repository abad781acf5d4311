"""Encoder features carry the interaural cues with the right signs; streaming equals offline."""

import numpy as np
import pytest

from agent.core.errors import AudioFormatError, ConfigError
from agent.core.features import (
    FeatureConfig,
    StreamingFeatures,
    compute_features,
    mel_band_centres_hz,
    mirror_spatial,
    warp_table,
)

CFG = FeatureConfig()
LAGS_S = np.linspace(-CFG.max_lag_s, CFG.max_lag_s, CFG.n_mels)


def _delayed_noise(rng, delay_samples: int, gain_r: float = 1.0, n: int = 48_000):
    x = (rng.standard_normal(n + 64) * 0.05).astype(np.float32)
    # positive delay: the right ear hears the signal later, so the left ear leads
    return np.stack([x[32:32 + n], gain_r * x[32 - delay_samples:32 - delay_samples + n]])


@pytest.mark.parametrize("delay", [-30, -12, 0, 12, 30])
def test_gcc_peaks_at_the_interaural_delay(rng, delay):
    spatial, _ = compute_features(_delayed_noise(rng, delay), 48_000)
    peak_s = LAGS_S[spatial[5].mean(0).argmax()]
    assert abs(peak_s - delay / 48_000) <= (LAGS_S[1] - LAGS_S[0])
    # low bands: the interaural phase's sine is positive when the left ear leads
    if delay:
        assert np.sign(spatial[4, :, 1:6].mean()) == np.sign(delay)


def test_ild_is_positive_when_the_left_ear_is_louder(rng):
    spatial, _ = compute_features(_delayed_noise(rng, 0, gain_r=0.5), 48_000)
    assert spatial[2].mean() == pytest.approx(20 * np.log10(2), abs=0.05)
    assert np.allclose(spatial[2], spatial[0] - spatial[1], atol=1e-4)


def test_mirroring_features_equals_swapping_the_ears(rng):
    audio = _delayed_noise(rng, 17, gain_r=0.7)
    spatial, semantic = compute_features(audio, 48_000)
    swapped, semantic2 = compute_features(audio[::-1].copy(), 48_000)
    assert np.allclose(mirror_spatial(spatial), swapped, atol=1e-4)
    assert np.allclose(semantic, semantic2, atol=1e-4)


def test_semantic_band_stops_at_8_khz(rng):
    n = 48_000
    t = np.arange(n) / 48_000
    tone = np.sin(2 * np.pi * 12_000 * t).astype(np.float32) * 0.1
    quiet = (rng.standard_normal(n) * 1e-4).astype(np.float32)
    loud, _ = compute_features(np.stack([tone + quiet, tone + quiet]), 48_000)
    _, sem_tone = compute_features(np.stack([tone + quiet, tone + quiet]), 48_000)
    _, sem_quiet = compute_features(np.stack([quiet, quiet]), 48_000)
    assert abs(sem_tone.mean() - sem_quiet.mean()) < 1.0  # a 12 kHz tone is outside the semantic band
    assert loud[0].max() > sem_quiet.max() + 30  # but the spatial bands hear it


@pytest.mark.parametrize("chunk", [1, 333, 960, 4801, 48_000])
def test_streaming_features_equal_offline(rng, chunk):
    audio = _delayed_noise(rng, 9, n=30_000)
    ref_sp, ref_se = compute_features(audio, 48_000)
    stream = StreamingFeatures()
    parts = [stream.push(audio[:, i:i + chunk]) for i in range(0, audio.shape[1], chunk)]
    sp = np.concatenate([p[0] for p in parts], axis=1)
    se = np.concatenate([p[1] for p in parts], axis=0)
    assert sp.shape == ref_sp.shape and np.allclose(sp, ref_sp, atol=1e-4)
    assert np.allclose(se, ref_se, atol=1e-4)


def test_bad_input_names_what_was_expected(rng):
    with pytest.raises(AudioFormatError, match="48000 Hz"):
        compute_features(np.zeros((2, 32_000), np.float32), 32_000)
    with pytest.raises(AudioFormatError, match=r"\(2, T\)"):
        compute_features(np.zeros(48_000, np.float32), 48_000)


def test_head_scale_reads_a_larger_heads_delay_as_the_encoders(rng):
    # a head 1.25 times KEMAR's delays the far ear 20 samples where KEMAR would delay it 16
    audio = _delayed_noise(rng, 20)
    plain, _ = compute_features(audio, 48_000)
    scaled, _ = compute_features(audio, 48_000, head_scale=1.25)
    ref, _ = compute_features(_delayed_noise(rng, 16), 48_000)
    step = LAGS_S[1] - LAGS_S[0]
    assert abs(LAGS_S[plain[5].mean(0).argmax()] - 20 / 48_000) <= step
    assert abs(LAGS_S[scaled[5].mean(0).argmax()] - 16 / 48_000) <= step
    # the interaural phase below 1.5 kHz is KEMAR's for a 16-sample delay
    low = slice(1, 20)
    assert np.abs(scaled[3:5, :, low].mean(1) - ref[3:5, :, low].mean(1)).max() < 0.05
    assert np.abs(plain[3:5, :, low].mean(1) - ref[3:5, :, low].mean(1)).max() > 0.2


def test_head_scale_moves_pinna_like_features_up_in_frequency(rng):
    # a +10 dB ILD bump at 4 kHz, as a head 1.25 times KEMAR's puts a feature KEMAR has at 5 kHz
    n = 48_000
    x = rng.standard_normal(n).astype(np.float32) * 0.05
    f = np.fft.rfftfreq(n, 1 / 48_000)
    bump = 10 ** (10 * np.exp(-0.5 * ((f - 4_000) / 300) ** 2) / 20)
    left = np.fft.irfft(np.fft.rfft(x) * bump, n).astype(np.float32)
    centres = mel_band_centres_hz(CFG.n_mels, CFG.fmin_hz, CFG.fmax_hz)

    def ild_peak_hz(head_scale):
        sp, _ = compute_features(np.stack([left, x]), 48_000, head_scale=head_scale)
        ild = np.clip(sp[2].mean(0), 0, None)
        return float((ild * centres).sum() / ild.sum())

    assert ild_peak_hz(1.0) == pytest.approx(4_000, rel=0.05)
    assert ild_peak_hz(1.25) == pytest.approx(5_000, rel=0.05)
    assert ild_peak_hz(0.8) == pytest.approx(3_200, rel=0.05)


def test_head_scale_leaves_the_semantic_channel_and_streams_like_offline(rng):
    audio = _delayed_noise(rng, 7, gain_r=0.8, n=30_000)
    sp0, se0 = compute_features(audio, 48_000)
    sp, se = compute_features(audio, 48_000, head_scale=0.9)
    assert np.array_equal(se, se0) and not np.allclose(sp, sp0, atol=1e-2)
    stream = StreamingFeatures(head_scale=0.9)
    parts = [stream.push(audio[:, i:i + 4_801]) for i in range(0, audio.shape[1], 4_801)]
    assert np.allclose(np.concatenate([p[0] for p in parts], axis=1), sp, atol=1e-4)
    # the identity warp is the identity
    table = rng.standard_normal((1025, 3)).astype(np.float32)
    assert np.array_equal(warp_table(table, 1.0), table)


@pytest.mark.parametrize("bad", [0.0, -1.0, 3.0, float("nan"), "wide"])
def test_bad_head_scale_names_the_range(bad):
    with pytest.raises(ConfigError, match=r"head_scale must be a number in \[0.5, 2.0\]"):
        compute_features(np.zeros((2, 4_800), np.float32), 48_000, head_scale=bad)
    with pytest.raises(ConfigError, match="head_scale"):
        StreamingFeatures(head_scale=bad)
