"""YAMNet's numpy front end: a tone lands in its mel band, silence is log(0.001), and the log-mel
equals the original's TF-Lite formulation (DFT matrix, window centred in the 512-point frame)."""

import numpy as np
import pytest

from agent.core.errors import AudioFormatError, BinauraError
from agent.core.yamnet_features import (
    LOG_OFFSET,
    N_FFT,
    PATCH_FRAMES,
    SILENCE_LOG_MEL,
    WINDOW_SAMPLES,
    YAMNET_SAMPLE_RATE_HZ,
    hertz_to_mel,
    log_mel,
    mel_band_centres_hz,
    mel_matrix,
    n_frames,
    patches,
    to_mono_16k,
    waveform_to_patches,
)

SR = YAMNET_SAMPLE_RATE_HZ


def _tone(f_hz: float, amp: float = 0.5, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)


def _reference_log_mel(x: np.ndarray) -> np.ndarray:
    """features.py's `_tflite_stft_magnitude` path, written independently: frames times a periodic
    Hann, zero-padded on both sides to 512, a real DFT by matrix; then the same mel weights."""
    n = 1 + (len(x) - WINDOW_SAMPLES) // 160
    frames = np.stack([x[160 * k:160 * k + WINDOW_SAMPLES] for k in range(n)]).astype(np.float64)
    frames *= 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(0, 1.0, 1.0 / WINDOW_SAMPLES))
    half = (N_FFT - WINDOW_SAMPLES) // 2
    frames = np.pad(frames, [(0, 0), (half, N_FFT - WINDOW_SAMPLES - half)])
    dft = np.exp(2j * np.pi / N_FFT * np.outer(np.arange(N_FFT), np.arange(N_FFT)))[:N_FFT // 2 + 1].T
    mag = np.abs(frames @ dft)
    return np.log(mag @ mel_matrix().astype(np.float64) + LOG_OFFSET)


def test_silence_gives_log_of_the_offset_in_every_band():
    m = log_mel(np.zeros(SR, np.float32))
    assert m.shape == (n_frames(SR), 64) == (98, 64)
    np.testing.assert_allclose(m, SILENCE_LOG_MEL, atol=1e-6)
    assert SILENCE_LOG_MEL == pytest.approx(-6.9078, abs=1e-4)


@pytest.mark.parametrize("f_hz", [250.0, 1000.0, 3000.0, 6000.0])
def test_a_tone_puts_its_energy_in_the_band_that_holds_it(f_hz):
    band = log_mel(_tone(f_hz)).mean(axis=0)
    centres = mel_band_centres_hz()
    peak = int(np.argmax(band))
    # the strongest band is one of the two whose triangles straddle the tone, in mel
    step = hertz_to_mel(centres[1]) - hertz_to_mel(centres[0])
    assert abs(hertz_to_mel(centres[peak]) - hertz_to_mel(f_hz)) <= step
    far = np.abs(hertz_to_mel(centres) - hertz_to_mel(f_hz)) > 4 * step
    assert band[peak] - band[far].max() > 3.0  # > 20x the magnitude of bands 4 steps away


def test_the_log_mel_is_a_log_of_the_magnitude():
    a, b = log_mel(_tone(1000.0, 0.1)).mean(0), log_mel(_tone(1000.0, 0.2)).mean(0)
    peak = int(np.argmax(a))
    assert b[peak] - a[peak] == pytest.approx(np.log(2.0), abs=1e-3)  # magnitude, not power


def test_log_mel_matches_the_original_tflite_formulation(rng):
    x = (rng.standard_normal(SR) * 0.1).astype(np.float32)
    x += _tone(440.0, 0.3)
    np.testing.assert_allclose(log_mel(x), _reference_log_mel(x), atol=2e-4)


def test_the_mel_weights_follow_tf_signal():
    w = mel_matrix()
    assert w.shape == (N_FFT // 2 + 1, 64)
    assert np.all(w[0] == 0)  # the DC bin is dropped
    bins_hz = np.linspace(0, SR / 2, N_FFT // 2 + 1)
    assert np.all(w[(bins_hz < 125.0) | (bins_hz > 7500.0)] == 0)
    assert w.max() <= 1.0 and np.all(w.sum(axis=0) > 0)  # peak-1 triangles, no empty band
    c = mel_band_centres_hz()
    assert c[0] > 125.0 and c[-1] < 7500.0 and np.all(np.diff(c) > 0)


@pytest.mark.parametrize("seconds, n_patches", [(0.3, 1), (0.975, 1), (1.0, 2), (1.44, 2), (1.5, 3), (10.0, 20)])
def test_padding_gives_the_patches_yamnet_gives(seconds, n_patches):
    p = waveform_to_patches(np.zeros(int(round(seconds * SR)), np.float32))
    assert p.shape == (n_patches, PATCH_FRAMES, 64)


def test_patches_are_windows_of_the_log_mel_every_48_frames(rng):
    m = rng.standard_normal((300, 64)).astype(np.float32)
    p = patches(m)
    assert p.shape == (5, 96, 64)
    np.testing.assert_array_equal(p[3], m[144:240])
    assert patches(m[:95]).shape == (0, 96, 64)
    with pytest.raises(BinauraError, match="hop_frames"):
        patches(m, hop_frames=0)


def test_input_checks_name_what_was_expected():
    with pytest.raises(AudioFormatError, match="below the 16000 Hz"):
        to_mono_16k(np.zeros(8000, np.float32), 8000)
    with pytest.raises(AudioFormatError, match=r"\(T,\) mono or \(C, T\)"):
        to_mono_16k(np.zeros((1, 2, 3), np.float32), SR)
    with pytest.raises(AudioFormatError, match="16 kHz mono"):
        log_mel(np.zeros((2, SR), np.float32))


def test_binaural_48k_becomes_the_16k_mono_mix():
    x = _tone(1000.0, 0.4, seconds=0.5)
    up = np.repeat(x, 3)  # a 48 kHz signal with the same 1 kHz content (imaging above 8 kHz)
    mono = to_mono_16k(np.stack([up, np.zeros_like(up)]), 48_000)
    assert len(mono) == len(x)
    peak_a = int(np.argmax(log_mel(mono).mean(0)))
    assert peak_a == int(np.argmax(log_mel(x).mean(0)))
