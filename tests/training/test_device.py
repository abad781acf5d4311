"""The recording device in synthesis: a hot microphone clips, a quiet one is quiet, a 16 kHz
board leaves nothing above 8 kHz (and binaura's own detector says so), and the other draws of a
scene do not move."""

import numpy as np
import pytest

from agent.core.cues import cue_limits
from agent.core.errors import ConfigError
from training.synth.config import SynthConfig
from training.synth.device import DEVICE_KEY, apply_level, apply_low_rate
from training.synth.scenes import render_scene, sample_spec

RATE = 48_000
BASE = dict(duration_s=1.0, event_duration_s=(0.8, 1.0), heads=("kemar-mit",), max_sources=1, p_reverberant=0.0,
            snr_db=(30.0, 35.0))


def _band_db(audio, lo_hz, hi_hz, ref=(500.0, 7_000.0)):
    spec = np.abs(np.fft.rfft(audio, axis=-1)) ** 2
    f = np.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    band = spec[:, (f >= lo_hz) & (f < hi_hz)].sum()
    return 10 * np.log10(band / spec[:, (f >= ref[0]) & (f < ref[1])].sum())


def test_the_device_draws_leave_the_scene_itself_alone():
    plain = SynthConfig(**BASE).validate()
    dev = SynthConfig(**BASE, p_device_level=1.0, p_band_limited=0.5).validate()
    rates = set()
    for i in range(12):
        a, b = sample_spec(plain, 3, i), sample_spec(dev, 3, i)
        assert DEVICE_KEY not in a.extra
        assert (a.sources, a.head, a.render_seed, a.output_rms_dbfs) == (b.sources, b.head, b.render_seed,
                                                                         b.output_rms_dbfs)
        assert -65.0 <= b.extra[DEVICE_KEY]["rms_dbfs"] <= -5.0
        rates.add(b.extra[DEVICE_KEY].get("rate_hz"))
    assert None in rates and len(rates - {None}) >= 1 and rates - {None} <= {16_000, 22_050, 24_000}


def test_a_hot_scene_clips_at_full_scale_and_a_quiet_one_keeps_its_level():
    cfg = SynthConfig(**BASE, p_device_level=1.0).validate()
    spec = sample_spec(cfg, 4, 0)
    hot, quiet = dict(spec.extra), dict(spec.extra)
    hot[DEVICE_KEY], quiet[DEVICE_KEY] = {"rms_dbfs": -3.0}, {"rms_dbfs": -60.0}
    a_hot, scene = render_scene(type(spec)(**{**spec.__dict__, "extra": hot}), cfg)
    a_quiet, _ = render_scene(type(spec)(**{**spec.__dict__, "extra": quiet}), cfg)
    assert scene.extra[DEVICE_KEY] == {"rms_dbfs": -3.0}
    assert np.abs(a_hot).max() <= 1.0
    assert np.mean(np.abs(a_hot) >= 0.999) > 0.001  # samples on the rail: clipped, not scaled down
    rms = 20 * np.log10(np.sqrt(np.mean(a_quiet.astype(np.float64) ** 2)))
    assert rms == pytest.approx(-60.0, abs=0.01)
    # clipping adds energy above the source's own band relative to the clean scene at the same gain
    clean = a_quiet * 10 ** (57 / 20)
    assert _band_db(a_hot, 12_000, 20_000) > _band_db(clean, 12_000, 20_000) + 3


def test_level_clips_symmetric_and_keeps_quiet_audio_linear():
    x = np.sin(np.linspace(0, 200 * np.pi, 4800, dtype=np.float32))[None].repeat(2, 0)
    y = apply_level(x.copy(), 0.0)  # RMS 0 dBFS: a sine's peak is 3 dB over full scale
    assert y.max() == pytest.approx(1 - 1 / 32768) and y.min() == pytest.approx(-1.0)
    z = apply_level(x.copy(), -40.0)
    np.testing.assert_allclose(z / z.max(), x / x.max(), atol=1e-6)


def test_a_sixteen_kilohertz_board_keeps_nothing_above_eight_and_is_flagged():
    broadband = dict(BASE, classes=("clapping", "water", "glass_breaking", "keyboard"))
    cfg = SynthConfig(**broadband, p_band_limited=1.0, band_limited_rates_hz=(16_000,)).validate()
    audio, scene = render_scene(sample_spec(cfg, 6, 1), cfg)
    full = SynthConfig(**broadband).validate()
    plain, _ = render_scene(sample_spec(full, 6, 1), full)
    assert scene.extra[DEVICE_KEY]["rate_hz"] == 16_000
    assert audio.shape == plain.shape and audio.dtype == np.float32
    # the scene had sound up there; the runtime's resampler (scipy's Kaiser polyphase filter)
    # leaves its stop band, 55-65 dB down, from 10 kHz on
    assert _band_db(plain, 10_000, 20_000) > -40
    assert _band_db(audio, 10_000, 20_000) < -50
    assert abs(_band_db(audio, 1_000, 6_000) - _band_db(plain, 1_000, 6_000)) < 0.5  # the band below is kept
    assert cue_limits(audio, RATE).limited and not cue_limits(plain, RATE).limited
    # interaural time difference survives: the low band's cross-correlation peak does not move
    def lag(a):
        c = np.fft.irfft(np.fft.rfft(a[0]) * np.conj(np.fft.rfft(a[1])))
        return int(np.argmax(np.concatenate([c[-48:], c[:49]]))) - 48
    assert lag(audio) == lag(plain)


def test_a_rate_at_or_above_the_scene_rate_changes_nothing():
    x = np.random.default_rng(0).standard_normal((2, 960)).astype(np.float32) * 0.1
    assert apply_low_rate(x, RATE, RATE) is x


def test_bad_device_settings_are_refused_by_name():
    with pytest.raises(ConfigError, match="p_device_level") as e:
        SynthConfig(p_device_level=2.0, p_band_limited=0.1, band_limited_rates_hz=(4_000,),
                    device_rms_dbfs=(0.0, -10.0)).validate()
    assert "band_limited_rates_hz" in str(e.value) and "device_rms_dbfs" in str(e.value)
    cfg = SynthConfig.from_dict({"p_band_limited": 0.2, "band_limited_rates_hz": [16000, 24000]})
    assert cfg.band_limited_rates_hz == (16_000, 24_000)
    # off, the rates are not read: a 16 kHz synthesis keeps the default list
    SynthConfig(sample_rate_hz=16_000).validate()
