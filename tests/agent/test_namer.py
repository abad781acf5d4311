"""A second encoder names the first one's sources (agent.localize.namer): a base source takes the
label of the namer's source active on its frames at its lateral angle, and keeps everything
else; a namer source on other frames, or on the other side of the head, names nothing; a
front/back or elevation disagreement does not stop a name (the lateral angle is what is
compared). Stand-in encoders (ACCDOA frames written by hand, tests.agent.test_relabel) keep
these exact; the registry's option is checked on the shipped export."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agent.core.errors import BinauraError
from agent.core.geometry import lateral_angle_deg
from agent.core.predictor import Clip
from agent.core.scene import SourceEstimate
from agent.localize.namer import NamedLocalizer, pick_names
from export.registry import make_localizer
from tests.agent.test_relabel import HandEncoder, Track

CLIP = Clip("c", np.zeros((2, 48_000 * 4), np.float32), 48_000)


def _named(base: list[Track], namer: list[Track]):
    return NamedLocalizer(HandEncoder(base, 4.0), HandEncoder(namer, 4.0)).localize(CLIP)


def test_lateral_angle_is_the_same_for_front_and_back_mirror_images():
    assert lateral_angle_deg(30.0, 0.0) == pytest.approx(30.0)
    assert lateral_angle_deg(150.0, 0.0) == pytest.approx(30.0)  # behind, same cone
    assert lateral_angle_deg(-90.0, 0.0) == pytest.approx(-90.0)
    assert lateral_angle_deg(90.0, 60.0) == pytest.approx(30.0)  # up on the left: nearer the median plane


def test_the_namer_names_a_source_and_its_direction_distance_confidence_stay():
    base = [Track("music", 40.0, 0.5, 3.0, elevation_deg=20.0, distance_m=3.0)]
    plain = HandEncoder(base, 4.0).localize(CLIP)
    # the namer heard a bird on the same frames, behind at the same lateral angle, and lower
    out = _named(base, [Track("bird", 140.0, 0.8, 3.5, elevation_deg=0.0)])
    assert [s.label for s in out] == ["bird"]
    assert dataclasses.replace(out[0], label="music") == plain[0]


def test_a_namer_source_elsewhere_in_time_or_on_the_other_side_names_nothing():
    base = [Track("music", 40.0, 0.5, 2.0)]
    assert [s.label for s in _named(base, [Track("bird", 40.0, 2.5, 3.5)])] == ["music"]  # other frames
    assert [s.label for s in _named(base, [Track("bird", -40.0, 0.5, 2.0)])] == ["music"]  # other ear
    assert [s.label for s in _named(base, [])] == ["music"]


def test_each_of_two_sources_takes_the_name_heard_where_it_is():
    base = [Track("music", 60.0, 0.0, 4.0), Track("engine", -60.0, 0.0, 4.0)]
    namer = [Track("speech", -55.0, 0.0, 4.0), Track("dog", 65.0, 0.0, 4.0)]
    out = {round(s.azimuth_deg): s.label for s in _named(base, namer)}
    assert out == {60: "dog", -60: "speech"}
    # two talkers (a multi-track namer): both sources may take one name, each at its own direction
    on = np.ones(40, bool)
    two = [(SourceEstimate(azimuth_deg=az, elevation_deg=0.0, distance_m=1.0, label="speech", confidence=0.9), on)
           for az in (-55.0, 65.0)]
    assert pick_names([(s, on) for s in _named(base, [])], two) == ["speech", "speech"]


def test_the_overlap_threshold_and_the_lateral_tie_break():
    on = np.zeros(10, bool)
    on[:10] = True
    src = lambda label, az: SourceEstimate(azimuth_deg=az, elevation_deg=0.0, distance_m=1.0,  # noqa: E731
                                           label=label, confidence=0.9)
    three = np.zeros(10, bool)
    three[:3] = True
    assert pick_names([(src("music", 30.0), on)], [(src("dog", 30.0), three)]) == ["dog"]  # 30%: enough
    assert pick_names([(src("music", 30.0), on)], [(src("dog", 30.0), three & (np.arange(10) < 2))]) == ["music"]
    # as many shared frames: the closer lateral angle names it
    assert pick_names([(src("music", 30.0), on)], [(src("dog", 50.0), on), (src("bird", 35.0), on)]) == ["bird"]


def test_the_namer_active_on_most_of_the_frames_wins():
    base = [Track("music", 30.0, 0.0, 4.0)]
    namer = [Track("bird", 35.0, 0.0, 1.5), Track("dog", 28.0, 1.5, 4.0)]
    assert [s.label for s in _named(base, namer)] == ["dog"]


def test_pick_names_refuses_frames_that_do_not_line_up():
    s = HandEncoder([Track("music", 30.0, 0.0, 1.0)], 1.0).localize(CLIP)[0]
    with pytest.raises(BinauraError, match="frames"):
        pick_names([(s, np.ones(10, bool))], [(s, np.ones(12, bool))])


def test_a_namer_on_another_frame_rate_is_refused():
    other = HandEncoder([], 4.0)
    other.runtime.output_rate_hz = 20.0  # its own SimpleNamespace
    with pytest.raises(BinauraError, match="frame rate"):
        NamedLocalizer(HandEncoder([], 4.0), other)


def test_the_registry_builds_names_option_and_refuses_it_with_yamnet():
    from agent.localize.encoder import DEFAULT_ENCODER_DIR
    from training.synth.config import SynthConfig
    from training.synth.scenes import render_scene, sample_spec

    loc = make_localizer(f"encoder:names={DEFAULT_ENCODER_DIR}")
    assert isinstance(loc, NamedLocalizer) and loc.name.startswith("encoder:names=")
    cfg = SynthConfig(split="bench", heads=("kemar-mit",), min_sources=2, max_sources=2, p_reverberant=0.0,
                      held_out_instances=True, duration_s=3.0).validate()
    clip = Clip("n", render_scene(sample_spec(cfg, 3, 0), cfg)[0], cfg.sample_rate_hz)
    # the shipped encoder naming its own sources changes nothing
    plain = loc.encoder.localize(clip)
    assert len(plain) == 2 and loc.localize(clip) == plain
    with pytest.raises(BinauraError, match="needs the folder"):
        make_localizer("encoder:names=")
    with pytest.raises(BinauraError, match="one of them"):
        make_localizer(f"encoder:yamnet:names={DEFAULT_ENCODER_DIR}")
