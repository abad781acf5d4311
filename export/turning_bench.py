"""Front/back on a turning split: world-frame fused tracks beside frame-by-frame detections.

Each scene streams through the agent's own pipeline (agent/pipeline.py) with the scene's
true head path as the orientation input (agent.track.orientation.PathOrientation), and is
scored per source:
- fused: the world-frame track of the source's class nearest the truth at the source's last
  active frame (the clip's end for a source that lasts), against the truth in the world
  frame (the head frame at t = 0, the dataset contract);
- frame: every frame detection of the source's class while it is active, against where the
  source is heard at that frame (the head path applied), as the encoder alone would do;
- tracker: the head-frame track (no fusion) at the same last frame, against the head-frame truth.
A pair is a front/back confusion when the prediction's mirror is within half its error
(training.eval.metrics, the `bench localize` definition). Settling: frames from the first
frame the head has turned 2 deg since the track began to the first frame from which the
track stays resolved to the right side.
"""

from __future__ import annotations

import numpy as np

from agent.capture import ArraySource
from agent.core.dataset import Dataset
from agent.core.geometry import great_circle_deg, mirror_front_back_deg
from agent.core.rotation import HeadPath, scene_head_path
from agent.localize.encoder import EncoderRuntime
from agent.pipeline import Pipeline, PipelineConfig
from agent.track.orientation import PathOrientation

MIN_TURN_DEG = 30.0
BLOCK_S = 0.1


def _pair(p_az, p_el, t_az, t_el) -> tuple[float, bool]:
    err = float(great_circle_deg(p_az, p_el, t_az, t_el))
    mirrored = float(great_circle_deg(mirror_front_back_deg(p_az), p_el, t_az, t_el))
    return err, mirrored < err / 2


def score_scene(rt: EncoderRuntime, scene, audio: np.ndarray, rate: int) -> dict:
    path = scene_head_path(scene) or HeadPath.still(scene.duration_s)
    raw = []
    pipe = Pipeline(rt, PipelineConfig(), on_detections=raw.extend, orientation=PathOrientation(path))
    snaps = []  # (frame time, fused tracks, head-frame tracker tracks)
    for block in ArraySource(audio, rate, name=scene.id, paced=False, block_s=BLOCK_S).blocks():
        pipe.process(block)
        if pipe.tracker.t_s is not None and (not snaps or snaps[-1][0] != pipe.tracker.t_s):
            snaps.append((pipe.tracker.t_s, list(pipe.fusion.fused), pipe.tracker.tracks))
    out = []
    for s in scene.sources:
        active = [x for x in snaps if s.onset_s <= x[0] <= s.offset_s]
        row = {"label": s.label, "turn_deg": path.turn_range_deg(), "room": scene.room_kind}
        frame = []
        for f in raw:
            if s.onset_s <= f.t_s <= s.offset_s:
                h_az, h_el = path.head_direction(s.azimuth_deg, s.elevation_deg, f.t_s)
                frame += [_pair(d.azimuth_deg, d.elevation_deg, float(h_az), float(h_el))
                          for d in f.detections if d.label == s.label]
        row["frame"] = frame
        mine = [(t, [f for f in fused if f.track.label == s.label], [tr for tr in trk if tr.label == s.label])
                for t, fused, trk in active]
        mine = [x for x in mine if x[1]]
        if mine:
            t_end, fused, trk = mine[-1]
            best = min(fused, key=lambda f: great_circle_deg(f.world_azimuth_deg, f.world_elevation_deg,
                                                             s.azimuth_deg, s.elevation_deg))
            row["fused"] = _pair(best.world_azimuth_deg, best.world_elevation_deg, s.azimuth_deg, s.elevation_deg)
            h_az, h_el = path.head_direction(s.azimuth_deg, s.elevation_deg, t_end)
            near = min(trk, key=lambda tr: great_circle_deg(tr.azimuth_deg, tr.elevation_deg, float(h_az), float(h_el)))
            row["tracker"] = _pair(near.azimuth_deg, near.elevation_deg, float(h_az), float(h_el))
            row["settle_frames"] = _settle(mine, best.track.track_id, s)
        out.append(row)
    return {"scene": scene.id, "sources": out}


def _settle(mine, track_id: int, s) -> int | None:
    """Frames from the first 2 deg of turn to settling right for good (None: never or no turn)."""
    series = [(t, f) for t, fused, _ in mine for f in fused if f.track.track_id == track_id]
    start = next((i for i, (_, f) in enumerate(series) if f.turned_deg >= 2.0), None)
    if start is None:
        return None
    ok = [f.resolved and _pair(f.world_azimuth_deg, f.world_elevation_deg, s.azimuth_deg, s.elevation_deg)[0] < 45
          for _, f in series]
    if not ok[-1]:
        return None
    first = len(ok) - 1
    while first > 0 and ok[first - 1]:
        first -= 1
    return max(0, first - start)


def _summary(pairs: list[tuple[float, bool]]) -> dict:
    if not pairs:
        return {"n": 0, "front_back_confusion": None, "angular_error_mean_deg": None, "er20": None}
    err = np.array([p[0] for p in pairs])
    return {"n": len(pairs), "front_back_confusion": float(np.mean([p[1] for p in pairs])),
            "angular_error_mean_deg": float(err.mean()), "angular_error_median_deg": float(np.median(err)),
            "er20": float(np.mean(err > 20))}


def bench_turning(ds: Dataset, encoder: str | None = None, progress: bool = True) -> dict:
    rt = EncoderRuntime(encoder, threads=1)
    rows = []
    for i, scene in enumerate(ds.scenes):
        audio, rate = ds.load_audio(scene)
        rows += score_scene(rt, scene, audio, rate)["sources"]
        if progress:
            print(f"  turning bench: {i + 1}/{len(ds.scenes)} scenes", flush=True)
    result = {}
    turned = lambda r: r["turn_deg"] >= MIN_TURN_DEG  # noqa: E731
    for name, sel in (("turned", turned), ("still", lambda r: not turned(r)),
                      ("turned, anechoic", lambda r: turned(r) and r["room"] == "anechoic"),
                      ("turned, reverberant", lambda r: turned(r) and r["room"] == "reverberant")):
        rs = [r for r in rows if sel(r)]
        settle = [r["settle_frames"] for r in rs if r.get("settle_frames") is not None]
        result[name] = {
            "sources": len(rs), "tracked": sum("fused" in r for r in rs),
            "fused": _summary([r["fused"] for r in rs if "fused" in r]),
            "tracker_head_frame": _summary([r["tracker"] for r in rs if "tracker" in r]),
            "frame_by_frame": _summary([p for r in rs for p in r["frame"]]),
            "settle_frames_median": float(np.median(settle)) if settle else None,
            "settled_sources": len(settle),
        }
    return result


def turning_table(result: dict) -> str:
    """A table: per split (clips turned >= MIN_TURN_DEG, and the rest), fused vs head-frame
    tracker vs frame by frame."""
    def cell(v, pct=False):
        return "n/a" if v is None else (f"{v:.1%}" if pct else f"{v:.1f}")

    lines = ["| clips | scored as | n | front/back confusion | angular error mean (deg) | er20 |", "|---|---|---|---|---|---|"]
    for split, r in result.items():
        for key, name in (("fused", "world-frame tracks"), ("tracker_head_frame", "head-frame tracks"),
                          ("frame_by_frame", "frame by frame")):
            m = r[key]
            lines.append(f"| {split} | {name} | {m['n']} | {cell(m['front_back_confusion'], True)} | "
                         f"{cell(m['angular_error_mean_deg'])} | {cell(m['er20'], True)} |")
        lines.append(f"| {split} | frames to settle (median) | {r['settled_sources']} | "
                     f"{cell(r['settle_frames_median'])} | | |")
    return "\n".join(lines)
