"""The listening pipeline (agent/pipeline.py) and its runner, on scenes with known truth."""

import dataclasses

import numpy as np
import pytest

from agent.answer.tracks import TrackAnswerer, mentioned
from agent.capture.block import PcmBlock
from agent.console import summarize
from agent.core.errors import BinauraError
from agent.core.geometry import great_circle_deg
from agent.localize.encoder import EncoderRuntime
from agent.pipeline import Pipeline, PipelineConfig
from agent.track.events import AnswerEvent, HealthEvent, OffsetEvent, OnsetEvent, check_event


@pytest.fixture(scope="module")
def rt():
    return EncoderRuntime()


@pytest.fixture(scope="module")
def dog_left():
    """An anechoic 5 s scene: a dog 90 deg to the left, 2 m away, from 0.5 to 4.5 s."""
    from training.synth.config import preset
    from training.synth.scenes import SourceSpec, render_scene, sample_spec

    cfg = preset("demo")
    spec = sample_spec(cfg, 5, 0)
    spec = dataclasses.replace(spec, room=None, sources=[SourceSpec("dog", 90.0, 0.0, 2.0, 0.5, 4.5, 0.0, 11)])
    audio, scene = render_scene(spec, cfg)
    return audio.astype(np.float32), scene


def _blocks(audio, rate, block_s, t0=0.0):
    n = int(round(block_s * rate))
    for i in range(0, audio.shape[1], n):
        yield PcmBlock(t0 + i / rate, rate, np.ascontiguousarray(audio[:, i:i + n]))


def _run(rt, audio, rate, block_s, narrator=None):
    pipe = Pipeline(rt, narrator=narrator)
    events = []
    for b in _blocks(audio, rate, block_s):
        events += pipe.process(b)
    return pipe, events + pipe.finish()


def _track_json(events):
    return [e.to_json() for e in events if not isinstance(e, HealthEvent)]


def test_a_dog_on_the_left_is_tracked_on_the_left_then_ends(rt, dog_left):
    audio, scene = dog_left
    _, events = _run(rt, audio, scene.sample_rate_hz, 0.1)
    assert all(not check_event(e.to_json()) for e in events)
    onsets = [e for e in events if isinstance(e, OnsetEvent)]
    assert [e.label for e in onsets] == ["dog"]
    on = onsets[0]
    assert great_circle_deg(on.azimuth_deg, on.elevation_deg, 90.0, 0.0) < 20.0  # left, not right or behind
    assert 0.3 <= on.t_start <= 1.0 and on.t_s - 0.5 < 1.0  # heard within a second of its start
    off = [e for e in events if isinstance(e, OffsetEvent)]
    assert len(off) == 1 and off[0].track_id == on.track_id and 4.0 <= off[0].t_end <= 5.0


def test_block_size_does_not_change_the_events(rt, dog_left):
    audio, scene = dog_left
    a = _track_json(_run(rt, audio, scene.sample_rate_hz, 0.05)[1])
    b = _track_json(_run(rt, audio, scene.sample_rate_hz, 0.37)[1])
    assert a == b and len(a) >= 2


def test_another_rate_is_resampled_and_heard_in_the_same_place(rt, dog_left):
    from agent.core.audio import resample_to

    audio, scene = dog_left
    low = resample_to(audio, 48_000, 32_000)
    _, events = _run(rt, low, 32_000, 0.1)
    on = [e for e in events if isinstance(e, OnsetEvent)]
    assert len(on) == 1 and great_circle_deg(on[0].azimuth_deg, on[0].elevation_deg, 90.0, 0.0) < 25.0


def test_lost_audio_becomes_counted_silence_and_the_clock_does_not_jump(rt, dog_left):
    audio, scene = dog_left
    rate = scene.sample_rate_hz
    pipe = Pipeline(rt)
    blocks = list(_blocks(audio, rate, 0.1))
    del blocks[20:25]  # half a second lost upstream
    events = []
    for b in blocks:
        events += pipe.process(b)
    events += pipe.finish()
    assert pipe.counters["lost_s"] == pytest.approx(0.5, abs=1e-3)
    assert pipe.counters["audio_s"] == pytest.approx(audio.shape[1] / rate, abs=1e-3)  # silence filled the gap
    health = [e for e in events if isinstance(e, HealthEvent)][-1]
    assert health.counters["lost_s"] == pytest.approx(0.5, abs=1e-3) and health.counters["realtime_factor"] > 0


def test_recent_audio_and_frames_cover_the_asked_window(rt, dog_left):
    audio, scene = dog_left
    pipe, _ = _run(rt, audio, scene.sample_rate_hz, 0.1)
    x = pipe.recent_audio(2.0)
    assert x.shape == (2, 96_000) and np.allclose(x, audio[:, -96_000:], atol=1e-5)
    f = pipe.recent_frames(3.0)
    assert f.n == 30 and f.start + f.n == pipe.counters["frames"] >= 49 and f.spatial_emb.shape[0] == 30


def test_a_rate_change_mid_stream_and_a_finished_pipeline_are_refused(rt):
    pipe = Pipeline(rt)
    pipe.process(PcmBlock(0.0, 48_000, np.zeros((2, 4800), np.float32)))
    with pytest.raises(BinauraError, match="changed its rate"):
        pipe.process(PcmBlock(0.1, 44_100, np.zeros((2, 4410), np.float32)))
    pipe.finish()
    with pytest.raises(BinauraError, match="finished"):
        pipe.process(PcmBlock(0.1, 48_000, np.zeros((2, 4800), np.float32)))
    with pytest.raises(BinauraError, match="hop_frames"):
        Pipeline(rt, PipelineConfig(hop_frames=0))


def test_the_track_answerer_reads_the_tracks_and_never_invents(rt, dog_left):
    audio, scene = dog_left
    pipe = Pipeline(rt)
    for b in _blocks(audio[:, :3 * 48_000], scene.sample_rate_hz, 0.1):  # mid-scene: the dog is live
        pipe.process(b)
    ans = TrackAnswerer()
    where = "".join(ans("Where is the barking dog?", pipe))
    assert "to your left" in where and "metres" in where
    assert "".join(ans("Where is the siren?", pipe)) == "I don't hear a siren."
    assert "to your right" in ans.answer("If I turn around, where will the dog be?", pipe.tracks)
    assert "in front of you" in ans.answer("If I turn left, where is the dog?", pipe.tracks)
    assert ans.answer("How many sounds are there?", pipe.tracks) == "I hear 1 sound."


def test_question_words_name_classes():
    assert mentioned("Which is closer, the car horn or the dog?") == ["car_horn", "dog"]
    assert mentioned("where is someone talking") == ["speech"]
    assert mentioned("Is the ding-dong above me?") == ["doorbell"]
    assert mentioned("what's that noise") == []


def test_runner_inline_emits_answers_and_the_summary_names_the_source(rt, dog_left):
    from agent.capture.block import PcmBlock as _B  # noqa: F401 - the contract the source yields
    from agent.run import Outputs, Runner

    audio, scene = dog_left

    class ListSource:
        name, live, rate_hz = "list", False, scene.sample_rate_hz

        def blocks(self):
            yield from _blocks(audio, scene.sample_rate_hz, 0.1)

        def counters(self):
            return {"underflows": 0}

        def describe(self):
            return "list"

        def close(self):
            pass

    out = Outputs([])
    runner = Runner(ListSource(), Pipeline(rt), out, answerer=TrackAnswerer(), duration_s=3.0)
    runner.run()
    text = runner.ask("Where is the dog?")
    assert "to your left" in text  # asked after the end: a sound heard in the last 5 s still counts
    answers = [e for e in out.log if isinstance(e, AnswerEvent)]
    assert len(answers) == 1 and answers[0].question == "Where is the dog?"
    assert max(e.t_s for e in out.log) <= 3.2  # --duration stopped the stream
    s = summarize(out.log, 3.0)
    assert "1 source track(s)" in s and "the dog" in s and "left" in s
