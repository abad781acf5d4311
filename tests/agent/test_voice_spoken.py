"""Spoken questions from the live binaural stream (48 kHz PcmBlocks) and transcribe_span."""

from __future__ import annotations

import numpy as np
import pytest

from agent.capture.block import PcmBlock
from agent.core.errors import AudioFormatError, BinauraError
from tests.agent.test_voice_vad import (
    RATE_HZ,
    SPEECH_AZIMUTH_DEG,
    non_speech_stream,
    question_stream,
)

BLOCK = 960  # 20 ms at 48 kHz, a capture block


def blocks(audio: np.ndarray, t0_s: float = 100.0, n: int = BLOCK):
    for i in range(0, audio.shape[1], n):
        yield PcmBlock(t0_s + i / RATE_HZ, RATE_HZ, np.ascontiguousarray(audio[:, i:i + n]))


@pytest.fixture(scope="module")
def transcriber():
    from agent.voice.asr import Transcriber

    try:
        return Transcriber()
    except BinauraError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def stream():
    return question_stream()


def test_one_question_from_the_stream(transcriber, stream):
    from agent.voice.spoken import SpokenQuestions

    audio, t0, t1 = stream
    sq = SpokenQuestions(transcriber)
    got = []
    for b in blocks(audio):
        got += sq.push(b)
    got += sq.flush()
    assert len(got) == 1, [q.text for q in got]
    q = got[0]
    assert "dog" in q.text.lower() and "where" in q.text.lower(), q.text
    # On the capture clock (the stream started at 100 s).
    assert abs(q.t_start_s - (100 + t0)) < 0.3 and abs(q.t_end_s - (100 + t1)) < 0.3
    c = sq.counters()
    assert c["speech_segments"] == 1 and c["asr_runs"] == 1 and c["questions"] == 1
    assert c["blocks"] == -(-audio.shape[1] // BLOCK)
    assert abs(c["audio_ms"] - 1000 * audio.shape[1] / RATE_HZ) <= c["blocks"]


def test_non_speech_never_reaches_the_recogniser(transcriber):
    from agent.voice.spoken import SpokenQuestions

    sq = SpokenQuestions(transcriber)
    got = []
    for b in blocks(non_speech_stream(), n=4800):
        got += sq.push(b)
    got += sq.flush()
    assert got == []
    assert sq.counters()["asr_runs"] == 0 and sq.counters()["speech_segments"] == 0


def test_a_rate_change_mid_stream_is_refused(transcriber):
    from agent.voice.spoken import SpokenQuestions

    sq = SpokenQuestions(transcriber)
    sq.push(PcmBlock(0.0, RATE_HZ, np.zeros((2, BLOCK), np.float32)))
    with pytest.raises(AudioFormatError, match="rate changed"):
        sq.push(PcmBlock(0.02, 16_000, np.zeros((2, 320), np.float32)))


def test_transcribe_span_says_the_words_and_where(transcriber, stream):
    from agent.voice.spoken import transcribe_span

    audio, t0, t1 = stream
    # The span on a capture clock where the audio buffer starts at 100 s.
    span = transcribe_span(audio, RATE_HZ, 100 + t0, 100 + t1, SPEECH_AZIMUTH_DEG,
                           audio_t0_s=100.0, transcriber=transcriber)
    assert "dog" in span.text.lower(), span.text
    assert span.steering != "mix" and span.azimuth_deg == SPEECH_AZIMUTH_DEG
    assert all(100 + t0 - 0.5 <= w.t_start_s <= 100 + t1 + 0.5 for w in span.transcript.words)
    answer = span.answer()
    assert "front-right" in answer and "dog" in answer.lower()


def test_transcribe_span_refuses_a_span_outside_the_audio(transcriber):
    from agent.voice.spoken import transcribe_span

    with pytest.raises(ValueError, match="outside"):
        transcribe_span(np.zeros((2, RATE_HZ), np.float32), RATE_HZ, 5.0, 6.0, transcriber=transcriber)


def test_ring_buffer_keeps_the_newest_samples():
    from agent.voice.spoken import _Ring

    ring = _Ring(10)
    for k in range(0, 25, 7):
        ring.write(np.arange(k, min(k + 7, 25), dtype=np.float32))
    assert ring.total == 25
    np.testing.assert_array_equal(ring.read(15, 25), np.arange(15, 25))
    np.testing.assert_array_equal(ring.read(0, 18), np.arange(15, 18))  # older samples are gone
    ring.write(np.arange(100, 130, dtype=np.float32))  # a write longer than the ring
    np.testing.assert_array_equal(ring.read(0, 1000), np.arange(120, 130))
