"""Spoken narration: espeak-ng renders real speech; the speaker never blocks its caller and
drops what falls behind, counting it."""

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from agent.core.errors import BinauraError, ConfigError
from agent.narrate import Speaker, SpeakerConfig, render_wav, spoken_form


def test_a_sentence_renders_to_speech_length_audible_audio(tmp_path):
    text = "A dog started barking on your left, about 2 m away."
    path = render_wav(text, tmp_path / "s.wav")
    x, rate_hz = sf.read(path, dtype="float32")
    assert x.ndim == 1 and rate_hz >= 16000
    duration_s = len(x) / rate_hz
    assert 1.5 < duration_s < 8.0  # ~12 words at 170 words/min: about 4 s
    rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)
    assert rms_db > -35.0
    frame = int(0.02 * rate_hz)  # 20 ms frames: speech is mostly voiced, with short pauses
    e = np.sqrt(np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    active = np.mean(e > 0.1 * e.max())
    assert 0.4 < active < 0.98


def test_units_are_read_out_in_full():
    assert spoken_form("about 2 m away") == "about 2 metres away"
    assert spoken_form("about 1 m away") == "about 1 metre away"
    assert spoken_form("about 1.5 m away, at 9 o'clock") == "about 1.5 metres away, at 9 o'clock"
    assert spoken_form("A dog on my left") == "A dog on my left"


def test_a_missing_espeak_names_the_package():
    with pytest.raises(BinauraError, match="apt-get install espeak-ng"):
        Speaker(SpeakerConfig(executable="espeak-ng-not-installed"))
    with pytest.raises(ConfigError):
        SpeakerConfig(rate_wpm=5, max_queue=0).validate()


class _SlowVoice:
    """Stands in for espeak: each sentence blocks until released."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()
        self.said: list[str] = []

    def __call__(self, text):
        self.started.set()
        assert self.release.wait(10.0)
        self.said.append(text)


def _wait(pred, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_say_never_blocks_and_a_backlog_is_dropped_and_counted():
    voice = _SlowVoice()
    with Speaker(SpeakerConfig(max_queue=2), play=voice) as sp:
        sp.say("one")
        assert voice.started.wait(5.0)  # "one" is being spoken, and holds the voice
        t0 = time.monotonic()
        for text in ("two", "three", "four", "five"):
            assert sp.say(text)
        assert time.monotonic() - t0 < 0.5  # queued, not spoken: the caller goes on
        assert sp.counters()["speech_dropped"] == 2 and sp.counters()["speech_queued"] == 2
        voice.release.set()
        _wait(lambda: sp.counters()["speech_said"] == 3)
    assert voice.said == ["one", "four", "five"]  # the newest news, not the backlog
    assert not sp.say("six")  # closed


def test_sentences_that_waited_too_long_are_dropped():
    now = [0.0]
    voice = _SlowVoice()
    sp = Speaker(SpeakerConfig(max_age_s=4.0), play=voice, clock=lambda: now[0])
    sp.say("old news")
    assert voice.started.wait(5.0)
    sp.say("stale by the time it is read")
    now[0] = 10.0
    voice.release.set()
    _wait(lambda: sp.counters()["speech_dropped"] == 1)
    sp.close()
    assert voice.said == ["old news"] and sp.counters()["speech_said"] == 1


def test_errors_are_counted_and_the_speaker_carries_on():
    def flaky(text):
        if text == "bad":
            raise RuntimeError("no audio device")

    with Speaker(play=flaky) as sp:
        sp.say("bad")
        _wait(lambda: sp.counters()["speech_errors"] == 1)
        sp.say("good")
        _wait(lambda: sp.counters()["speech_said"] == 1)
    assert "no audio device" in sp.last_error


def test_the_real_speaker_starts_and_closes_promptly():
    t0 = time.monotonic()
    sp = Speaker()
    sp.close()
    assert time.monotonic() - t0 < 2.0 and not sp._thread.is_alive()
