"""faster-whisper on local files only: the packaged tiny.en hears the spoken question; a model
that is not on disk is refused without a download."""

from __future__ import annotations

import time

import numpy as np
import pytest

from agent.core.errors import AudioFormatError, BinauraError
from tests.agent.test_voice_vad import QUESTION, espeak


@pytest.fixture(scope="module")
def transcriber():
    from agent.voice.asr import Transcriber

    try:
        return Transcriber()
    except BinauraError as exc:
        pytest.skip(str(exc))


def test_transcribes_the_question_with_word_times(transcriber):
    from agent.voice.asr import ASR_RATE_HZ

    speech = 0.3 * espeak(QUESTION, ASR_RATE_HZ)
    pad = np.zeros(ASR_RATE_HZ // 2, np.float32)
    audio = np.concatenate([pad, speech, pad])
    tr = transcriber.transcribe(audio, t0_s=10.0)
    words = tr.text.lower()
    assert "dog" in words and "where" in words, tr.text
    assert tr.language == "en" and tr.audio_s == pytest.approx(audio.size / ASR_RATE_HZ)
    assert tr.words and all(10.0 <= w.t_start_s <= w.t_end_s <= 10.0 + tr.audio_s + 0.5 for w in tr.words)
    dog = next(w for w in tr.words if "dog" in w.text.lower())
    assert dog.t_end_s > 10.0 + 0.5 + 0.5 * speech.size / ASR_RATE_HZ  # the last word, late in the clip
    print(f"ASR: {tr.seconds:.2f} s for {tr.audio_s:.2f} s of audio (tiny.en int8, one thread)")


def test_a_two_second_question_costs(transcriber):
    """The number the report quotes: a 2 s question through tiny.en on one thread."""
    from agent.voice.asr import ASR_RATE_HZ

    speech = 0.3 * espeak("where is the dog sleeping", ASR_RATE_HZ, words_per_min=130)
    audio = np.zeros(2 * ASR_RATE_HZ, np.float32)
    audio[:min(speech.size, audio.size)] = speech[:audio.size]  # ~2.0 s of speech
    cpu = time.process_time()
    tr = transcriber.transcribe(audio)
    cpu = time.process_time() - cpu
    print(f"ASR: a 2 s question: {tr.seconds:.2f} s wall, {cpu:.2f} s CPU: {tr.text!r}")
    assert "dog" in tr.text.lower()


def test_too_short_audio_gives_an_empty_transcript(transcriber):
    tr = transcriber.transcribe(np.zeros(800, np.float32))
    assert tr.text == "" and tr.words == ()


def test_bad_audio_is_refused(transcriber):
    with pytest.raises(AudioFormatError, match="mono"):
        transcriber.transcribe(np.zeros((2, 16000), np.float32))
    with pytest.raises(AudioFormatError, match="NaN"):
        transcriber.transcribe(np.full(16000, np.nan, np.float32))


def test_a_model_name_not_on_disk_is_refused_without_download(monkeypatch, tmp_path):
    from agent.voice.asr import resolve_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(BinauraError, match="never downloads"):
        resolve_model("Systran/faster-whisper-no-such-model")


def test_an_incomplete_model_folder_is_refused(tmp_path):
    from agent.voice.asr import resolve_model

    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(BinauraError, match="tokenizer.json"):
        resolve_model(tmp_path)


def test_a_model_folder_path_is_used_as_given(transcriber):
    from agent.voice.asr import resolve_model

    assert resolve_model(transcriber.model_path) == transcriber.model_path
