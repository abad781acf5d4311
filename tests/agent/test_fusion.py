"""World-frame fusion: a head turn resolves front from back; a still head asks for one."""

import json

import numpy as np
import pytest

from agent.core.errors import ConfigError
from agent.core.geometry import azimuth_diff_deg, mirror_front_back_deg, wrap_azimuth_deg
from agent.core.rotation import HeadPath
from agent.track.events import SuggestionEvent, check_event, dumps
from agent.track.fusion import Fusion, FusionConfig
from agent.track.orientation import HeadPose, PathOrientation
from agent.track.tracker import Detection, Tracker, TrackerConfig

FRAME_S = 0.1


def run(world_az: float, path: HeadPath, seconds: float, confused: bool, seed: int = 0, noise_deg: float = 5.0):
    """Head-frame detections of a still source at world_az (elevation 0) heard by a head
    following `path`, reported as the front/back mirror when `confused`, through the tracker
    and the fusion. Returns per frame (t, yaw, fused track or None) and the events."""
    rng = np.random.default_rng(seed)
    tracker, fusion, orient = Tracker(TrackerConfig(confirm_hits=2, hold_s=2.0)), Fusion(), PathOrientation(path)
    frames, events = [], []
    for k in range(int(seconds / FRAME_S)):
        t = k * FRAME_S
        yaw = float(path.angles(t)[0])
        heard = wrap_azimuth_deg(world_az - yaw)  # where the source is in the head frame now
        reported = mirror_front_back_deg(heard) if confused else heard
        det = Detection("siren", float(wrap_azimuth_deg(reported + rng.normal(0, noise_deg))),
                        float(rng.normal(0, noise_deg)), 2.0, 0.9)
        events += tracker.update(t, [det])
        events += fusion.update(t, [det], tracker.tracks, orient.at(t))
        frames.append((t, yaw, fusion.fused[0] if fusion.fused else None))
    return frames, events


def turn_left_40():
    # still for 1 s, then a 40 deg turn to the left over 1 s, then held
    return HeadPath(np.array([0.0, 1.0, 2.0, 5.0]), np.array([0.0, 0.0, 40.0, 40.0]), np.zeros(4), np.zeros(4))


def test_a_turn_resolves_a_source_heard_in_front_that_is_behind():
    # A siren behind-left at world 150 deg, always heard as its mirror (30 deg, front-left).
    frames, _ = run(150.0, turn_left_40(), 4.0, confused=True)
    before = [f for t, _, f in frames if f is not None and t < 1.0]
    assert before and all(not f.resolved for f in before)  # two ears alone cannot tell
    assert abs(azimuth_diff_deg(before[-1].world_azimuth_deg, 30.0)) < 10  # as heard, until then
    settled = [(t, yaw) for t, yaw, f in frames if f is not None and f.resolved]
    t_settle, yaw_settle = settled[0]
    assert 1.0 < t_settle <= 2.0 and yaw_settle < 40.0  # within the turn
    after = [f for t, _, f in frames if t >= t_settle]
    assert all(f.resolved and abs(azimuth_diff_deg(f.world_azimuth_deg, 150.0)) < 10 for f in after)  # and stays
    end = frames[-1][2]
    # spoken in the current head frame: the head turned 40 deg left, so it is now at 110 (behind-left)
    assert abs(azimuth_diff_deg(end.track.azimuth_deg, 110.0)) < 10
    assert end.probability > 0.99 and end.turned_deg == pytest.approx(40.0, abs=0.5)


def test_a_turn_confirms_a_source_heard_right():
    frames, events = run(30.0, turn_left_40(), 4.0, confused=False, seed=1)
    end = frames[-1][2]
    assert end.resolved and abs(azimuth_diff_deg(end.world_azimuth_deg, 30.0)) < 10
    assert abs(azimuth_diff_deg(end.track.azimuth_deg, -10.0)) < 10  # now just right of ahead
    assert not any(isinstance(e, SuggestionEvent) for e in events)  # the head turned by itself


@pytest.mark.parametrize("world_az, side", [(150.0, "left"), (-40.0, "right")])
def test_a_still_head_stays_ambiguous_and_suggests_a_turn(world_az, side):
    frames, events = run(world_az, HeadPath.still(6.0), 6.0, confused=True, seed=2)
    assert all(not f.resolved for _, _, f in frames if f is not None)
    tips = [e for e in events if isinstance(e, SuggestionEvent)]
    assert len(tips) == 1 and 1.5 <= tips[0].t_s <= 2.5  # once, after suggest_after_s
    assert tips[0].text == f"turn 40 deg {side} to confirm whether the siren is in front or behind"
    assert tips[0].turn_deg == (40.0 if side == "left" else -40.0)
    assert not check_event(json.loads(dumps(tips[0])))


def test_a_source_beside_an_ear_is_not_ambiguous():
    frames, events = run(90.0, HeadPath.still(3.0), 3.0, confused=False, seed=3, noise_deg=2.0)
    assert frames[-1][2].resolved and not any(isinstance(e, SuggestionEvent) for e in events)


def test_lost_orientation_passes_tracks_through_and_restarts_on_return():
    fusion = Fusion()
    tracker = Tracker(TrackerConfig(confirm_hits=1))
    det = Detection("dog", 30.0, 0.0, 1.0, 0.9)
    tracker.update(0.0, [det])
    fusion.update(0.0, [det], tracker.tracks, HeadPose(np.eye(3), "world", 0.0, 0))
    tracker.update(0.1, [det])
    fusion.update(0.1, [det], tracker.tracks, HeadPose(None, "fallback", 3.0, 0))
    assert fusion.mode == "fallback" and fusion.tracks == tracker.tracks  # head frame, unchanged
    assert fusion.fused[0].world_azimuth_deg is None and not fusion.fused[0].resolved
    tracker.update(0.2, [det])
    fusion.update(0.2, [det], tracker.tracks, HeadPose(np.eye(3), "world", 0.0, 1))
    assert fusion.fused[0].world_azimuth_deg == pytest.approx(30.0, abs=1e-6)


def test_config_refuses_calls_that_could_settle_front_back_alone():
    with pytest.raises(ConfigError, match="call_max"):
        FusionConfig(call_max=5.0).validate()


def test_the_pipeline_runs_fusion_only_with_an_orientation_input():
    from agent.capture.block import PcmBlock
    from agent.localize.encoder import EncoderRuntime
    from agent.pipeline import Pipeline
    from agent.track.events import WarningEvent
    from agent.track.orientation import OrientationInput

    rt = EncoderRuntime()
    assert Pipeline(rt).fusion is None  # default: today's behaviour
    orientation = OrientationInput()
    pipe = Pipeline(rt, orientation=orientation)
    quiet = (np.random.default_rng(0).standard_normal((2, 48_000)) * 1e-4).astype(np.float32)
    events = []
    for k in range(3):  # 3 s with no orientation sample at all
        events += pipe.process(PcmBlock(float(k), 48_000, quiet))
    events += pipe.finish()
    warned = [e for e in events if isinstance(e, WarningEvent)]
    assert len(warned) == 1 and "orientation lost (none received)" in warned[0].text
    assert pipe.fusion.mode == "fallback"
    health = [e for e in events if e.type == "health"][-1]
    assert health.counters["orientation_world_frame"] == 0 and health.counters["orientation_samples"] == 0
