"""What spatial cues an input can carry (agent/core/cues.py), on a benchmark scene as the
benchmark renders it, and that scene band-limited the ways a device delivers it."""

import numpy as np
import pytest
from scipy.signal import firwin, resample_poly

from agent.core.cues import (
    HIGH_BAND_HZ,
    HIGH_BAND_MAX_DB,
    MIN_SIGNAL_S,
    SIGNAL_FLOOR_DBFS,
    BandMeter,
    CueLimits,
    cue_limits,
    rate_limits,
)


@pytest.fixture(scope="module")
def bench_clip():
    """Benchmark scene s000000 (preset bench, seed 20261126, as data/bench holds it): a siren,
    water and speech around a KEMAR head, 5 s at 48 kHz, quantised to 16 bits as written."""
    from training.synth.config import preset
    from training.synth.scenes import render_scene, sample_spec

    cfg = preset("bench")
    audio, scene = render_scene(sample_spec(cfg, 20261126, 0), cfg)
    assert scene.sample_rate_hz == 48_000
    return np.round(audio.astype(np.float64) * 32768) / 32768


def _q16(x):
    """As a 16-bit file holds it (no clipping: the scenes have headroom)."""
    assert np.abs(x).max() < 1
    return np.round(x * 32768) / 32768


def test_the_bench_clip_is_full_band(bench_clip):
    lim = cue_limits(bench_clip, 48_000)
    assert lim == CueLimits(True, True, lim.bandwidth_hz, None) and not lim.limited and lim.note() is None
    assert lim.bandwidth_hz > 16_000  # its sounds reach past the pinna band
    m = BandMeter(48_000)
    m.push(bench_clip)
    assert m.high_band_db() > HIGH_BAND_MAX_DB + 20  # -28 dB: far from the threshold


def test_the_clip_at_16_khz_is_limited_by_its_rate(bench_clip):
    lim = cue_limits(_q16(resample_poly(bench_clip, 1, 3, axis=-1)), 16_000)
    assert not lim.front_back and not lim.elevation and lim.bandwidth_hz == 8_000
    assert "16000 Hz" in lim.reason and "8 kHz" in lim.note()
    assert lim == rate_limits(16_000)  # the rate alone decides, whatever the content
    assert rate_limits(22_050).limited and not rate_limits(32_000).limited and not rate_limits(44_100).limited


@pytest.mark.parametrize("how", ["16 kHz upsampled", "low-passed at 8 kHz"])
def test_a_48_khz_file_with_nothing_above_8_khz_is_caught_by_its_content(bench_clip, how):
    if how == "16 kHz upsampled":  # a 16 kHz board's recording, resampled before it reached binaura
        x = _q16(resample_poly(_q16(resample_poly(bench_clip, 1, 3, axis=-1)), 3, 1, axis=-1))
    else:  # a steep FIR low-pass: stopband from 8 kHz
        x = _q16(np.apply_along_axis(np.convolve, -1, bench_clip, firwin(1023, 7_600, fs=48_000), "same"))
    lim = cue_limits(x, 48_000)
    assert not lim.front_back and not lim.elevation
    assert 7_000 <= lim.bandwidth_hz <= HIGH_BAND_HZ and "resampled" in lim.reason
    assert lim.note() == ("Note: this recording carries no sound above "
                          f"{lim.bandwidth_hz / 1000:.0f} kHz, so I can't reliably tell front from back "
                          "or up from down.")
    m = BandMeter(48_000)
    m.push(x)
    assert m.high_band_db() < HIGH_BAND_MAX_DB - 5  # -62 dB and less: margin below the threshold


def test_a_quiet_16_bit_recording_is_caught_once_its_rounding_noise_is_taken_out(bench_clip):
    """30 dB quieter, the 16-bit rounding noise alone fills the band above 10 kHz to about
    -50 dB of the sound below 8 kHz: the meter subtracts it where the samples lie on the
    16-bit grid (and only there: a float file keeps all it holds)."""
    x = _q16(resample_poly(_q16(resample_poly(bench_clip * 10 ** (-30 / 20), 1, 3, axis=-1)), 3, 1, axis=-1))
    m = BandMeter(48_000)
    m.push(x.astype(np.float32))
    assert m.pcm16 and m.limits().limited
    raw = 10 * np.log10(m._spectrum[m._freqs >= HIGH_BAND_HZ].sum() / m._spectrum[m._ref].sum())
    assert raw > HIGH_BAND_MAX_DB > m.high_band_db()  # the noise alone would have hidden it
    m = BandMeter(48_000)
    m.push(x + 1e-7)  # off the grid
    assert not m.pcm16


def test_silence_and_very_short_input_are_not_flagged(bench_clip):
    """Silence holds no evidence of a band limit: only the rate rule judges it."""
    for x in (np.zeros((2, 96_000)), np.zeros((2, 10)), np.zeros((2, 0)),
              10 ** ((SIGNAL_FLOOR_DBFS - 10) / 20) * np.random.default_rng(0).standard_normal((2, 96_000)),
              bench_clip[:, :int(0.8 * MIN_SIGNAL_S * 48_000)]):  # sound, but too little of it
        lim = cue_limits(x, 48_000)
        assert lim == CueLimits(True, True, 24_000.0, None), x.shape
    assert cue_limits(np.zeros((2, 16_000)), 16_000).limited  # a 16 kHz file is limited, silent or not


def test_the_meter_gives_the_same_answer_whatever_the_block_size(bench_clip):
    x = _q16(resample_poly(_q16(resample_poly(bench_clip, 1, 3, axis=-1)), 3, 1, axis=-1))
    whole = BandMeter(48_000)
    whole.push(x)
    streamed = BandMeter(48_000)
    for i in range(0, x.shape[-1], 777):
        streamed.push(x[:, i:i + 777])
    assert streamed.limits() == whole.limits()
    assert streamed.high_band_db() == pytest.approx(whole.high_band_db(), abs=1e-9)
    assert whole.audio_s == pytest.approx(5.0, abs=0.03) and whole.signal_s > MIN_SIGNAL_S
    assert cue_limits(x[0], 48_000).limited  # one channel is judged the same way


def test_the_json_form_has_the_documented_keys(bench_clip):
    d = rate_limits(16_000).to_json()
    assert list(d) == ["front_back", "elevation", "bandwidth_hz", "reason"]
    assert d["front_back"] is False and d["bandwidth_hz"] == 8000 and isinstance(d["reason"], str)
    with pytest.raises(ValueError):
        BandMeter(0)


def test_the_live_pipeline_judges_once_at_5_s_whatever_the_block_size(bench_clip):
    """A 48 kHz stream whose sound came through 16 kHz: one warning, when 5 s of audio went in
    (235 frames of 1024 samples), the same for blocks of 0.1 and 0.37 s; answers read `cues`."""
    from agent.capture.block import PcmBlock
    from agent.localize.encoder import EncoderRuntime
    from agent.pipeline import CUE_CHECK_S, Pipeline
    from agent.track.events import WarningEvent, check_event

    x = _q16(resample_poly(_q16(resample_poly(bench_clip, 1, 3, axis=-1)), 3, 1, axis=-1))
    x = np.concatenate([x, x[:, :48_000]], axis=-1).astype(np.float32)  # 6 s
    rt = EncoderRuntime()
    seen = []
    for block_s in (0.1, 0.37):
        pipe = Pipeline(rt)
        assert pipe.cues is None  # nothing heard yet
        n = int(block_s * 48_000)
        events = []
        for i in range(0, x.shape[-1], n):
            events += pipe.process(PcmBlock(i / 48_000, 48_000, np.ascontiguousarray(x[:, i:i + n])))
            if i == 0:
                assert pipe.cues == rate_limits(48_000)  # the rate alone, until the content is judged
        events += pipe.finish()
        warned = [e for e in events if isinstance(e, WarningEvent)]
        assert len(warned) == 1 and warned[0].cues == pipe.cues and pipe.cues.limited
        assert warned[0].t_s == pytest.approx(235 * 1024 / 48_000) and warned[0].t_s >= CUE_CHECK_S
        assert not check_event(warned[0].to_json())
        seen.append(warned[0])
    assert seen[0].to_json() == seen[1].to_json()  # as written (times to 1 ms), like every event
