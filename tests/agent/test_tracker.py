"""The source tracker and its events: physical scenes with known truth, schema, replay."""

import io
import itertools
import json
import math

import numpy as np
import pytest

from agent.core.errors import BinauraError, ConfigError
from agent.core.geometry import cart_to_sph, great_circle_deg, sph_to_cart
from agent.localize.encoder import EncoderFrames
from agent.track import (
    SCHEMA,
    AnswerEvent,
    Detection,
    EventWriter,
    HealthEvent,
    NarrationEvent,
    Tracker,
    TrackerConfig,
    check_event,
    detections_from_frames,
)
from agent.track.tracker import match

RATE_HZ = 10.0  # the shipped encoder's output frames per second


def _perturb(az, el, noise_deg, rng):
    """A direction moved by a random isotropic error whose RMS angle is noise_deg."""
    if noise_deg == 0:
        return az, el
    u = sph_to_cart(az, el)
    helper = np.array([0.0, 0.0, 1.0]) if abs(u[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, u)
    e1 /= np.linalg.norm(e1)
    d = rng.normal(0.0, math.radians(noise_deg) / math.sqrt(2), 2)
    th = float(np.hypot(*d))
    step = (d[0] * e1 + d[1] * np.cross(u, e1)) / max(th, 1e-12)
    a, e, _ = cart_to_sph(u * math.cos(th) + step * math.sin(th))
    return float(a), float(e)


def _source(on_s, off_s, where, label="dog", noise_deg=0.0, gaps=(), distance_m=2.0):
    """where: (az, el) or a function t -> (az, el); gaps: silent (start, end) spans."""
    path = where if callable(where) else (lambda t: where)
    return dict(on=on_s, off=off_s, path=path, label=label, noise=noise_deg, gaps=gaps, d=distance_m)


def _frames(sources, duration_s, seed=0):
    """Per frame (t_s, detections): every active source heard once, at its noisy direction."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(round(duration_s * RATE_HZ))):
        t = k / RATE_HZ
        dets = []
        for s in sources:
            if s["on"] <= t + 1e-9 < s["off"] and not any(a <= t + 1e-9 < b for a, b in s["gaps"]):
                az, el = _perturb(*s["path"](t), s["noise"], rng)
                dets.append(Detection(s["label"], az, el, s["d"], 0.9))
        out.append((t, dets))
    return out


def _run(frames, cfg=None, finish=True):
    """Feed frames; return the events and, per frame, the confirmed tracks after it."""
    tr = Tracker(cfg)
    events, history = [], []
    for t, dets in frames:
        events += tr.update(t, dets)
        history.append((t, tr.tracks))
    if finish:
        events += tr.finish()
    return events, history


def _of(events, kind):
    return [e for e in events if e.type == kind]


def test_stationary_source_gives_one_onset_then_one_offset_after_the_hold():
    cfg = TrackerConfig()
    events, _ = _run(_frames([_source(1.0, 4.0, (60.0, 0.0), distance_m=2.5)], 7.0), cfg, finish=False)
    (on,), (off,) = _of(events, "onset"), _of(events, "offset")
    assert 1.0 <= on.t_s <= 1.3 and on.t_start == pytest.approx(1.0)  # heard within 0.3 s of its start
    assert on.azimuth_deg == pytest.approx(60.0, abs=0.01) and on.distance_m == pytest.approx(2.5)
    assert off.track_id == on.track_id and off.t_end == pytest.approx(3.9)  # the last frame it was heard
    assert off.t_s == pytest.approx(3.9 + cfg.hold_s)  # declared once unheard for hold_s, not before
    assert all(not check_event(e.to_json()) for e in events)


@pytest.mark.parametrize("pause_s,n_tracks", [(0.5, 1), (2.0, 2)])
def test_a_short_pause_keeps_the_id_a_long_one_starts_a_new_track(pause_s, n_tracks):
    src = _source(0.5, 5.0, (60.0, 10.0), noise_deg=3.0, gaps=[(2.0, 2.0 + pause_s)])
    events, _ = _run(_frames([src], 6.5))
    ons, offs = _of(events, "onset"), _of(events, "offset")
    assert len(ons) == len(offs) == n_tracks
    assert len({e.track_id for e in events}) == n_tracks
    if n_tracks == 2:
        assert offs[0].t_end == pytest.approx(1.9) and ons[1].t_start == pytest.approx(2.0 + pause_s)


def test_two_dogs_on_either_side_get_two_tracks():
    events, history = _run(_frames([_source(0.5, 3.0, (60.0, 0.0), noise_deg=3.0),
                                    _source(0.8, 3.0, (-60.0, 0.0), noise_deg=3.0)], 4.5), finish=False)
    assert len(_of(events, "onset")) == 2
    tracks = next(tracks for t, tracks in history if t == pytest.approx(2.0))
    assert sorted(round(x.azimuth_deg / 60) for x in tracks) == [-1, 1]
    assert {x.label for x in tracks} == {"dog"} and len({x.track_id for x in tracks}) == 2


@pytest.mark.parametrize("b_elevation_deg,b_speed_deg_per_s", [(20.0, 60.0), (0.0, 30.0)])
def test_crossing_sources_keep_their_ids(b_elevation_deg, b_speed_deg_per_s):
    """A sweeps +90 -> -90 at 60 deg/s; B sweeps the other way, either 20 deg higher at the same
    speed, or at the same elevation (they meet) at half the speed. Each keeps its id throughout."""
    a = _source(0.0, 3.0, lambda t: (90.0 - 60.0 * t, 0.0), noise_deg=2.0)
    b = _source(0.0, 3.0, lambda t: (-90.0 + b_speed_deg_per_s * t, b_elevation_deg), noise_deg=2.0)
    events, history = _run(_frames([a, b], 3.0, seed=1))
    assert len(_of(events, "onset")) == 2
    for src in (a, b):
        ids = set()
        for t, tracks in history[3:]:
            if great_circle_deg(*a["path"](t), *b["path"](t)) < 10.0:
                continue  # where they meet, either track is "nearest" to both
            want = src["path"](t)
            ids.add(min(tracks, key=lambda x: great_circle_deg(x.azimuth_deg, x.elevation_deg, *want)).track_id)
        assert len(ids) == 1
    end = {e.track_id: e for e in _of(events, "offset")}
    assert len(end) == 2
    first = {e.track_id: e for e in _of(events, "onset")}
    for tid, e in end.items():  # each id ends where its own source went, not at the other's
        started_left = first[tid].azimuth_deg > 0
        want = a["path"](2.9) if started_left else b["path"](2.9)
        assert great_circle_deg(e.azimuth_deg, e.elevation_deg, *want) < 8.0


def test_a_one_frame_blip_makes_no_event_three_frames_make_a_source():
    blip, _ = _run(_frames([_source(1.0, 1.1, (30.0, 0.0))], 3.0))
    assert blip == []
    short, _ = _run(_frames([_source(1.0, 1.3, (30.0, 0.0))], 3.0))
    assert [e.type for e in short] == ["onset", "offset"]


def test_noisy_detections_are_smoothed_and_their_spread_reported():
    """5 deg RMS scatter around +60 deg: the smoothed direction stays within 2 deg, and the
    uncertainty says about 5 deg."""
    _, history = _run(_frames([_source(0.5, 6.0, (60.0, 10.0), noise_deg=5.0)], 6.0, seed=3), finish=False)
    settled = [tracks[0] for t, tracks in history if t >= 1.5]
    errors = [great_circle_deg(x.azimuth_deg, x.elevation_deg, 60.0, 10.0) for x in settled]
    assert np.mean(errors) < 2.0 and np.max(errors) < 4.0  # measured 0.8 mean, 1.5 max
    assert 4.0 < np.mean([x.uncertainty_deg for x in settled]) < 6.5  # measured 5.7 (5.0 over 10 seeds)
    assert settled[-1].speed_deg_per_s < 5.0 and settled[-1].moving_probability < 0.5


def _accdoa_frames(sources, labels, duration_s, seed=0):
    """EncoderFrames-like arrays for the scene: ACCDOA = activity x direction per class."""
    rows = _frames(sources, duration_s, seed)
    acc = np.zeros((len(rows), len(labels), 3), np.float32)
    log_d = np.zeros((len(rows), len(labels)), np.float32)
    for k, (_, dets) in enumerate(rows):
        for d in dets:
            c = labels.index(d.label)
            acc[k, c] = d.confidence * sph_to_cart(d.azimuth_deg, d.elevation_deg)
            log_d[k, c] = math.log(d.distance_m)
    return acc, log_d


@pytest.mark.parametrize("hop_frames", [1, 7, 10])
def test_hop_size_does_not_change_the_events(hop_frames):
    labels = ("dog", "siren", "speech")
    sources = [_source(0.3, 2.5, (60.0, 0.0), "dog", 4.0), _source(0.8, 4.0, lambda t: (100 - 30 * t, 5.0), "siren", 4.0),
               _source(1.0, 3.5, (-120.0, 20.0), "speech", 6.0, gaps=[(2.0, 2.4)])]
    acc, log_d = _accdoa_frames(sources, labels, 5.0, seed=4)
    zeros = np.zeros((len(acc), 4), np.float32)

    def events_for(hop):
        tr, out = Tracker(), []
        for s in range(0, len(acc), hop):
            frames = EncoderFrames(s, acc[s:s + hop], log_d[s:s + hop], log_d[s:s + hop], zeros[s:s + hop],
                                   zeros[s:s + hop])
            for f in detections_from_frames(frames, labels, RATE_HZ, t0_s=100.0):
                out += tr.update(f.t_s, f.detections)
        return [e.to_json() for e in out + tr.finish()]

    whole = events_for(len(acc))
    assert events_for(hop_frames) == whole
    assert sorted({e["label"] for e in whole if e["type"] == "onset"}) == ["dog", "siren", "speech"]
    assert min(e["t_start"] for e in whole) == pytest.approx(100.3)  # frames stamped t0 + index / rate


def test_matching_is_the_best_gated_assignment():
    """The Hungarian matching equals a brute-force search: most pairs inside the gates, then
    the least total angle."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, m = rng.integers(1, 5, size=2)
        cost, gate = rng.uniform(0, 90, (n, m)), rng.uniform(20, 60, n)
        got = match(cost, gate)
        best = (0, 0.0)
        for perm in itertools.permutations(range(max(n, m))):
            inside = [(i, perm[i]) for i in range(n) if perm[i] < m and cost[i, perm[i]] <= gate[i]]
            best = max(best, (len(inside), -sum(cost[i, j] for i, j in inside)))
        assert (len(got), -sum(cost[i, j] for i, j in got)) == pytest.approx(best)


def test_config_reports_every_bad_value_together():
    with pytest.raises(ConfigError) as e:
        TrackerConfig(gate_deg=0.0, hold_s=-1.0, confirm_hits=0, distance_gain=1.5).validate()
    assert len(e.value.problems) == 4
    for name in ("gate_deg", "hold_s", "confirm_hits", "distance_gain"):
        assert name in str(e.value)
    with pytest.raises(ConfigError, match="unknown key"):
        TrackerConfig.from_dict({"gate": 30})
    assert TrackerConfig.from_dict(TrackerConfig().to_dict()) == TrackerConfig()


def test_time_must_move_forward_and_detections_must_be_sane():
    tr = Tracker()
    tr.update(1.0, [])
    with pytest.raises(BinauraError, match="after the previous frame"):
        tr.update(1.0, [])
    with pytest.raises(BinauraError, match="elevation"):
        tr.update(1.1, [Detection("dog", 10.0, 95.0, 1.0, 0.9)])
    tr.reset()
    tr.update(0.0, [])  # a reset tracker starts a new clock


def test_events_follow_the_schema_and_each_line_is_flushed(tmp_path):
    events, _ = _run(_frames([_source(0.0, 1.0, (60.0, 0.0))], 1.5))
    events += [NarrationEvent(1.5, "a dog started barking on your left", track_id=1, label="dog"),
               AnswerEvent(1.6, "on your left, about 2 m away", "where is the dog?"),
               HealthEvent(1.7, {"overflows": 0, "bridge_gaps": 2})]
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        for i, e in enumerate(events):
            w.write(e)
            assert len(path.read_text().splitlines()) == i + 1  # on disk before the next event
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["type"] for x in lines] == ["onset", "offset", "narration", "answer", "health"]
    for x in lines:
        assert check_event(x) == [] and x["schema"] == SCHEMA
        assert list(x)[:12] == ["schema", "type", "t_s", "track_id", "label", "azimuth_deg", "elevation_deg",
                                "distance_m", "confidence", "uncertainty_deg", "t_start", "t_end"]
    onset, offset, narration, answer, health = lines
    assert onset["t_end"] is None and offset["t_end"] == 0.9 and onset["azimuth_deg"] == 60.0
    assert narration["track_id"] == 1 and narration["azimuth_deg"] is None and narration["text"].startswith("a dog")
    assert answer["question"] == "where is the dog?" and answer["track_id"] is None
    assert health["counters"] == {"bridge_gaps": 2, "overflows": 0}
    buf = io.StringIO()
    EventWriter(buf).write(HealthEvent(float("nan"), {}))
    assert json.loads(buf.getvalue())["t_s"] is None  # no NaN in JSON: unknown is null
    assert check_event({"schema": "binaura-events-0", "type": "onset"})  # an unknown schema is named


@pytest.fixture(scope="module")
def replay():
    """Three benchmark scenes through the shipped encoder, streamed hop by hop (5 frames)."""
    from agent.localize.encoder import EncoderRuntime, StreamingEncoder
    from training.synth.config import preset
    from training.synth.scenes import render_scene, sample_spec

    rt, cfg, out = EncoderRuntime(), preset("bench"), []
    for i in range(3):
        audio, scene = render_scene(sample_spec(cfg, 20261126, i), cfg)
        stream = StreamingEncoder(rt, hop_frames=5)
        hops = [stream.push(audio[:, j:j + 4800]) for j in range(0, audio.shape[1], 4800)] + [stream.flush()]
        out.append((scene, [h for h in hops if h is not None]))
    return rt, out


def test_replay_tracks_follow_synthesized_sources_through_the_shipped_encoder(replay):
    """Per true source: the fraction of its active frames in which a track of its class lies
    within 20 deg of it. Measured 0.535 mean over these 3 scenes (8 sources; three of them the
    encoder itself misses or hears > 90 deg away, front/back), against 0.551 for the encoder's raw frames;
    0.51 vs 0.48 over 40 benchmark scenes (encoder-bound: the issue's 0.8 floor needs a better
    encoder, not a better tracker)."""
    rt, scenes = replay
    tracked, raw = [], []
    for scene, hops in scenes:
        tr, frames_seen = Tracker(), []
        for hop in hops:
            for f in detections_from_frames(hop, rt.labels, rt.output_rate_hz):
                events = tr.update(f.t_s, f.detections)
                assert all(not check_event(e.to_json()) for e in events)
                frames_seen.append((f, tr.tracks))
        for s in scene.sources:
            def near(items, s=s):
                return any(x.label == s.label and great_circle_deg(x.azimuth_deg, x.elevation_deg, s.azimuth_deg,
                                                                   s.elevation_deg) <= 20.0 for x in items)
            active = [(f, tracks) for f, tracks in frames_seen if s.onset_s <= f.t_s < s.offset_s]
            tracked.append(np.mean([near(tracks) for _, tracks in active]))
            raw.append(np.mean([near(f.detections) for f, _ in active]))
    print(f"replay: tracked {np.mean(tracked):.3f} raw {np.mean(raw):.3f} per source {np.round(tracked, 2)}")
    assert len(tracked) == 8
    assert np.mean(tracked) >= 0.45  # measured 0.535
    # confirmation costs each source its first 2 frames; over 40 scenes the tracker gains more (0.51 vs 0.48)
    assert np.mean(tracked) >= np.mean(raw) - 0.05  # measured 0.535 vs 0.551 here
    assert sum(t > 0.9 for t in tracked) >= 4  # the sources the encoder hears well are tracked nearly throughout


def test_replay_is_hop_size_invariant_on_real_encoder_frames(replay):
    rt, scenes = replay
    scene, hops = scenes[0]
    whole = EncoderFrames(0, *(np.concatenate([getattr(h, k) for h in hops]) for k in
                               ("accdoa", "log_distance", "class_logits", "spatial_emb", "semantic_emb")))

    def events_for(hop):
        tr, out = Tracker(), []
        for s in range(0, whole.n, hop):
            part = EncoderFrames(s, *(getattr(whole, k)[s:s + hop] for k in
                                      ("accdoa", "log_distance", "class_logits", "spatial_emb", "semantic_emb")))
            out += tr.update_frames(detections_from_frames(part, rt.labels, rt.output_rate_hz))
        return [e.to_json() for e in out + tr.finish()]

    one = events_for(1)
    assert one == events_for(10) and len(one) >= 4
