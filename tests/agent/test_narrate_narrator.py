"""Narration from the tracks: the real tracker on synthetic detections gives exactly the
expected sentences; the rate limit, merging, staleness and chatter guards hold."""

import json
import math

import pytest

from agent.core.errors import BinauraError, ConfigError
from agent.core.labels import LABELS
from agent.narrate import NarrationConfig, Narrator
from agent.track import Detection, OffsetEvent, OnsetEvent, Track, Tracker, check_event, dumps

RATE_HZ = 10.0  # the shipped encoder's frames per second


def _source(label, on_s, off_s, where, distance_m=2.0, gaps=()):
    """where: (az, el) or t -> (az, el); gaps: silent (start, end) spans."""
    path = where if callable(where) else (lambda t: where)
    return dict(label=label, on=on_s, off=off_s, path=path, d=distance_m, gaps=gaps)


def _narrate(sources, duration_s, cfg=None, hop_frames=1):
    """The real tracker on the sources' detections, then the narrator once per hop."""
    tracker, narrator = Tracker(), Narrator(cfg)
    out, events = [], []
    n = int(round(duration_s * RATE_HZ))
    for k in range(n):
        t = k / RATE_HZ
        dets = [Detection(s["label"], *s["path"](t), s["d"], 0.9) for s in sources
                if s["on"] <= t + 1e-9 < s["off"] and not any(a <= t + 1e-9 < b for a, b in s["gaps"])]
        events += tracker.update(t, dets)
        if (k + 1) % hop_frames == 0 or k == n - 1:
            out += narrator.update(t, events, tracker.tracks)
            events = []
    return out, narrator


def _siren_path(t):
    """On the right until 5 s, then round behind at 90 deg/s, there from 6 s."""
    return (-90.0 - 90.0 * min(max(t - 5.0, 0.0), 1.0), 0.0)


SCENE = [_source("dog", 1.0, 6.0, (90.0, 0.0), 2.1), _source("bird", 1.0, 2.0, (0.0, 0.0), None),
         _source("siren", 3.0, 12.0, _siren_path, 3.2)]

EXPECTED = {
    "words": ["A dog and a bird started: the dog on your left, the bird ahead of you.",
              "A siren started on your right, about 3 m away.",
              "The siren has moved behind you.",
              "The dog stopped."],
    "clock": ["A dog and a bird started: the dog at 9 o'clock, the bird at 12 o'clock.",
              "A siren started at 3 o'clock, about 3 m away.",
              "The siren has moved to 6 o'clock.",
              "The dog stopped."],
    "degrees": ["A dog and a bird started: the dog 90 degrees to your left, the bird straight ahead.",
                "A siren started 90 degrees to your right, about 3 m away.",
                "The siren has moved and is now behind you.",
                "The dog stopped."],
}


@pytest.mark.parametrize("style", ["words", "clock", "degrees"])
def test_a_scene_gives_exactly_the_expected_sentences(style):
    """Dog (+90) and bird (0) start together at 1 s: one sentence. The bird's 1 s chirp ends
    unsaid (too short to matter). The siren starts at -90 at 3 s and swings behind at 5-6 s:
    said once it has held there for move_hold_s. The dog ends at 6 s: said after the tracker's
    hold (1 s) and the narrator's resume window (2 s)."""
    out, narrator = _narrate(SCENE, 14.0, NarrationConfig(style=style))
    assert [e.text for e in out] == EXPECTED[style]
    assert [e.t_s for e in out[:2]] == pytest.approx([1.4, 3.4])  # confirmed at 1.2 / 3.2, + merge window
    assert 6.5 <= out[2].t_s <= 7.2  # siren behind (< -157.5 deg) from about 5.7 s, + 1 s hold
    assert out[3].t_s == pytest.approx(5.9 + 1.0 + 2.0)  # last heard + tracker hold + resume window
    assert [(e.track_id, e.label) for e in out] == [(None, None), (3, "siren"), (3, "siren"), (2, "dog")]
    assert narrator.counters()["narration_dropped_stale"] == 0
    for e in out:
        assert not check_event(json.loads(dumps(e)))


def test_replay_is_exact_and_longer_hops_say_the_same():
    one, _ = _narrate(SCENE, 14.0)
    again, _ = _narrate(SCENE, 14.0)
    assert [dumps(e) for e in one] == [dumps(e) for e in again]
    by_hop, _ = _narrate(SCENE, 14.0, hop_frames=5)  # 0.5 s hops: same news, later stamps
    assert [e.text for e in by_hop] == [e.text for e in one]


@pytest.mark.parametrize("min_interval_s", [1.5, 3.0])
def test_a_burst_of_ten_onsets_respects_the_rate_limit(min_interval_s):
    """Ten sources of ten classes start 0.15 s apart all round the head: every one is announced
    exactly once, in few sentences, never two sooner than min_interval_s apart."""
    sources = [_source(LABELS[k], 1.0 + 0.15 * k, 9.0, (-162.0 + 36.0 * k, 0.0)) for k in range(10)]
    out, narrator = _narrate(sources, 8.0, NarrationConfig(min_interval_s=min_interval_s))
    gaps = [b.t_s - a.t_s for a, b in zip(out, out[1:])]
    assert len(out) >= 2 and min(gaps) >= min_interval_s - 1e-9
    c = narrator.counters()
    assert c["narration_onsets_said"] == 10 and c["narration_dropped_stale"] == c["narration_dropped_overflow"] == 0
    assert len(out) <= 3 and all(e.track_id is None for e in out)  # merged sentences
    assert any("more sounds started: " in e.text for e in out)


def test_a_source_wobbling_on_a_sector_border_makes_no_chatter():
    """A dog at 22.5 deg (the front / front-left border) +-6 deg, for 20 s: said once."""
    dog = _source("dog", 0.5, 20.0, lambda t: (22.5 + 6.0 * math.sin(2 * math.pi * t / 1.5), 0.0))
    out, _ = _narrate([dog], 20.0)
    assert len(out) == 1 and out[0].text.startswith("A dog started barking")


def _track(tid, az, t_s, label="dog"):
    return Track(tid, label, az, 0.0, 2.0, 0.9, 5.0, 0.0, 0.0, 0.0, t_s, 10, True)


def test_a_new_sector_must_hold_before_a_move_is_said():
    """Said at 10 deg (front); then it flips between 10 and 35 deg (front-left, 25 deg away)
    every 0.5 s: nothing. Then it stays at 35 deg: said once move_hold_s (1 s) later."""
    cfg = NarrationConfig()
    nr = Narrator(cfg)
    onset = OnsetEvent(t_s=0.0, track_id=1, label="dog", azimuth_deg=10.0, elevation_deg=0.0, distance_m=2.0,
                       confidence=0.9, uncertainty_deg=5.0, t_start=0.0)
    said = nr.update(0.0, [onset]) + nr.update(0.2, [], [_track(1, 10.0, 0.2)])
    assert [e.text for e in said] == ["A dog started barking ahead of you, about 2 m away."]
    t, out = 0.2, []
    while t < 10.0:
        t = round(t + 0.1, 3)
        az = 35.0 if int(t / 0.5) % 2 else 10.0
        out += nr.update(t, [], [_track(1, az, t)])
    assert out == []
    while t < 13.0:
        t = round(t + 0.1, 3)
        out += nr.update(t, [], [_track(1, 35.0, t)])
    assert [e.text for e in out] == ["The dog has moved ahead and to your left."]
    assert out[0].t_s == pytest.approx(11.1)  # at 35 deg since 10.1 s; + 1 s hold


@pytest.mark.parametrize("pause_s", [0.5, 1.5])
def test_a_source_that_pauses_and_comes_back_is_not_announced_again(pause_s):
    """A 0.5 s pause keeps the tracker's id; a 1.5 s one gets a new id, which the narrator
    takes for the same dog (same class, same place, back within resume_window_s): neither
    says "stopped" or "started" again. Its end is said once."""
    dog = _source("dog", 0.5, 8.0, (60.0, 0.0), gaps=[(1.5, 1.5 + pause_s)])
    out, narrator = _narrate([dog], 12.0)
    assert [e.text for e in out] == ["A dog started barking ahead and to your left, about 2 m away.",
                                     "The dog stopped."]
    assert narrator.counters()["narration_resumed"] == (1 if pause_s > 1.0 else 0)


def test_a_dog_back_somewhere_else_is_news():
    """A dog at 60 deg falls quiet; 1 s later a dog barks at -90 deg: a new source."""
    dog = _source("dog", 0.5, 1.5, (60.0, 0.0))
    moved = _source("dog", 2.5, 6.0, (-90.0, 0.0))
    out, _ = _narrate([dog, moved], 7.0)
    assert [e.text for e in out] == ["A dog started barking ahead and to your left, about 2 m away.",
                                     "A dog started barking on your right, about 2 m away."]


def test_news_that_went_stale_while_waiting_is_dropped():
    """With 3 s between sentences, a 0.4 s doorbell that starts just after a siren ends before
    its turn: nothing is said of it, and the drop is counted."""
    out, narrator = _narrate([_source("siren", 1.0, 9.0, (90.0, 0.0)), _source("doorbell", 1.5, 1.9, (-90.0, 0.0))],
                             6.0, NarrationConfig(min_interval_s=3.0, merge_window_s=0.0))
    assert [e.text for e in out] == ["A siren started on your left, about 2 m away."]
    assert narrator.counters()["narration_dropped_stale"] == 1


def test_two_of_a_kind_starting_together():
    out, _ = _narrate([_source("dog", 1.0, 5.0, (90.0, 0.0)), _source("dog", 1.0, 5.0, (-90.0, 0.0))], 3.0)
    assert [e.text for e in out] == [
        "A dog and another dog started: the first dog on your left, the second dog on your right."]


def _onset(tid, t_s, label="dog", az=0.0):
    return OnsetEvent(t_s=t_s, track_id=tid, label=label, azimuth_deg=az, elevation_deg=0.0, distance_m=None,
                      confidence=0.9, uncertainty_deg=5.0, t_start=t_s - 0.2)


def test_pending_news_is_bounded():
    nr = Narrator(NarrationConfig(max_pending=2, min_interval_s=2.0, merge_window_s=0.0))
    assert [e.text for e in nr.update(0.0, [_onset(1, 0.0)])] == ["A dog started barking ahead of you."]
    assert nr.update(0.5, [_onset(k, 0.5, "bird", 10.0 * k) for k in range(2, 7)]) == []
    assert nr.counters()["narration_dropped_overflow"] == 3
    (merged,) = nr.update(2.0, [])
    assert merged.text.startswith("A bird and another bird started: ")


def test_offsets_only_for_sources_that_lasted():
    nr = Narrator(NarrationConfig(merge_window_s=0.0, resume_window_s=0.0))
    nr.update(0.0, [_onset(1, 0.2)])
    off = OffsetEvent(t_s=2.0, track_id=1, label="dog", azimuth_deg=0.0, elevation_deg=0.0, distance_m=None,
                      confidence=0.9, uncertainty_deg=5.0, t_start=0.0, t_end=1.0)
    assert nr.update(4.0, [off]) == []  # heard for 1 s: a bark, not worth "stopped"


def test_time_must_not_run_backwards_and_config_errors_are_gathered():
    nr = Narrator()
    nr.update(1.0, [])
    with pytest.raises(BinauraError, match="not before"):
        nr.update(0.5, [])
    with pytest.raises(ConfigError) as e:
        NarrationConfig(style="compass", min_interval_s=-1.0, max_listed=0).validate()
    assert len(e.value.problems) == 3 and "words" in str(e.value)
    with pytest.raises(ConfigError, match="unknown key"):
        NarrationConfig.from_dict({"min_gap_s": 1.0})
    with pytest.raises(ConfigError, match="max_age_s"):
        NarrationConfig(max_age_s=1.0, resume_window_s=2.0).validate()
    assert NarrationConfig.from_dict(NarrationConfig(style="clock").to_dict()).style == "clock"
