"""The silero VAD run through onnxruntime: speech found at the right times, bird song, music,
tones and noise rejected, results independent of the chunk size.

Also the shared test audio of the voice tests: espeak-ng speech placed in a binaural stream
with silence and non-speech sounds around it (imported by the other test_voice_* modules).
"""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from agent.core.audio import resample_to
from agent.core.errors import BinauraError

RATE_HZ = 48_000
QUESTION = "where is the dog"
SPEECH_AT_S = 3.0  # where the question starts in the test stream
SPEECH_AZIMUTH_DEG = -45.0  # front-right


def espeak(text: str, rate_hz: int = RATE_HZ, voice: str = "en-us", words_per_min: int = 175,
           tmp_path=None) -> np.ndarray:
    """Mono float32 speech from espeak-ng at rate_hz, trimmed of its leading/trailing silence."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng; make setup installs it)")
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".wav", dir=tmp_path) as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_min), "-w", f.name, text], check=True,
                       capture_output=True)
        x, r = sf.read(f.name, dtype="float32")
    x = resample_to(x, r, rate_hz)
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    return x[loud[0]:loud[-1] + 1]


def place(mono: np.ndarray, azimuth_deg: float, rate_hz: int = RATE_HZ) -> np.ndarray:
    """(2, T): a simple spherical-head rendering (whole-sample ITD, broadband ILD)."""
    from agent.voice.steer import woodworth_itd_s

    itd = woodworth_itd_s(azimuth_deg)
    lag = int(round(abs(itd) * rate_hz))
    ild = 10 ** (-abs(np.sin(np.radians(azimuth_deg))) * 6.0 / 20)  # far ear up to 6 dB down
    near, far = mono, ild * np.concatenate([np.zeros(lag, np.float32), mono[:mono.size - lag]])
    return np.stack([near, far] if itd >= 0 else [far, near]).astype(np.float32)


def bird(duration_s: float, rate_hz: int = RATE_HZ) -> np.ndarray:
    """Chirps: 80 ms FM sweeps 3-5 kHz with harmonics, 6 per second (a songbird's pattern)."""
    t = np.arange(int(0.08 * rate_hz)) / rate_hz
    f = 3000 + 2000 * np.sin(np.pi * t / t[-1]) ** 2
    phase = 2 * np.pi * np.cumsum(f) / rate_hz
    chirp = (np.sin(phase) + 0.3 * np.sin(2 * phase)) * np.hanning(t.size)
    out = np.zeros(int(duration_s * rate_hz), np.float32)
    for k in range(0, out.size - chirp.size, int(rate_hz / 6)):
        out[k:k + chirp.size] += chirp
    return 0.3 * out


def music(duration_s: float, rate_hz: int = RATE_HZ) -> np.ndarray:
    """Piano-like notes: harmonic tones with decaying envelopes, a new note every 250 ms."""
    notes_hz = (261.6, 329.6, 392.0, 523.3, 440.0, 349.2)
    n = int(0.25 * rate_hz)
    t = np.arange(n) / rate_hz
    out = [sum(np.sin(2 * np.pi * h * notes_hz[k % 6] * t) / h for h in (1, 2, 3, 4))
           * np.exp(-t * 6) for k in range(int(duration_s / 0.25))]
    return (0.2 * np.concatenate(out)).astype(np.float32)


def noise(duration_s: float, level: float, seed: int, rate_hz: int = RATE_HZ) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal((2, int(duration_s * rate_hz)))).astype(np.float32)


def question_stream() -> tuple[np.ndarray, float, float]:
    """(2, T) at 48 kHz: quiet noise, bird song at +60, the question at -45 from 3.0 s, music
    at +120, quiet noise. Returns (audio, speech start s, speech end s)."""
    speech = 0.3 * espeak(QUESTION, words_per_min=140)  # a calm question; 175 wpm was read "when it is"
    end_s = SPEECH_AT_S + speech.size / RATE_HZ
    total_s = end_s + 0.5 + 2.0 + 1.0
    audio = noise(total_s, 0.002, seed=1)

    def add(x: np.ndarray, at_s: float, az: float) -> None:
        i = int(at_s * RATE_HZ)
        audio[:, i:i + x.size] += place(x, az)

    add(bird(1.5), 0.8, 60.0)
    add(speech, SPEECH_AT_S, SPEECH_AZIMUTH_DEG)
    add(music(2.0), end_s + 0.5, 120.0)
    return audio, SPEECH_AT_S, end_s


def non_speech_stream() -> np.ndarray:
    """(2, T): a steady 1 kHz tone, white noise, bird song and music, no speech."""
    tone = 0.2 * np.sin(2 * np.pi * 1000 * np.arange(2 * RATE_HZ) / RATE_HZ).astype(np.float32)
    parts = [place(tone, 30.0), noise(2.0, 0.05, seed=2), place(bird(2.0), -60.0),
             place(music(2.0), 90.0), noise(1.0, 0.002, seed=3)]
    return np.concatenate(parts, axis=1)


@pytest.fixture(scope="module")
def vad():
    from agent.voice.vad import Vad

    try:
        return Vad()
    except BinauraError as exc:
        pytest.skip(str(exc))


def test_finds_the_question_and_nothing_else(vad):
    audio, t0, t1 = question_stream()
    segs = vad.segments(audio, RATE_HZ)
    assert len(segs) == 1, segs
    assert abs(segs[0].t_start_s - t0) < 0.3 and abs(segs[0].t_end_s - t1) < 0.3, (segs, t0, t1)


def test_rejects_tone_noise_bird_and_music(vad):
    assert vad.segments(non_speech_stream(), RATE_HZ) == []


@pytest.mark.parametrize("chunk", [160, 511, 4801])
def test_segments_do_not_depend_on_chunk_size(vad, chunk):
    from agent.voice.vad import VAD_RATE_HZ

    audio, _, _ = question_stream()
    mono = resample_to(audio.mean(axis=0), RATE_HZ, VAD_RATE_HZ)
    whole = vad.segments(mono, VAD_RATE_HZ)
    vad.reset()
    streamed = []
    for i in range(0, mono.size, chunk):
        streamed += vad.push(mono[i:i + chunk])
    streamed += vad.flush()
    assert streamed == whole


def test_speech_open_at_end_of_stream_is_closed_by_flush(vad):
    from agent.voice.vad import VAD_RATE_HZ

    speech = 0.3 * espeak(QUESTION, VAD_RATE_HZ)
    vad.reset()
    assert vad.push(np.concatenate([np.zeros(VAD_RATE_HZ // 2, np.float32), speech])) == []
    assert vad.in_speech
    segs = vad.flush()
    assert len(segs) == 1 and abs(segs[0].t_start_s - 0.5) < 0.3


def test_config_errors_are_gathered():
    from agent.core.errors import ConfigError
    from agent.voice.vad import VadConfig

    with pytest.raises(ConfigError) as e:
        VadConfig(threshold=0.3, neg_threshold=0.5, min_silence_s=-1)
    assert len(e.value.problems) == 2


def test_vad_cost_per_second_of_audio(vad):
    """Measured, printed (pytest -s) and bounded loosely: the model is ~7 ms CPU per audio
    second. CPU time, not wall time: the bound must hold on a loaded machine too."""
    from agent.voice.vad import VAD_RATE_HZ

    x = (0.01 * np.random.default_rng(0).standard_normal(10 * VAD_RATE_HZ)).astype(np.float32)
    vad.reset()
    t = time.process_time()
    vad.push(x)
    ms_per_s = (time.process_time() - t) * 1000 / 10
    print(f"VAD: {ms_per_s:.1f} ms CPU per second of audio (one thread)")
    assert ms_per_s < 50
