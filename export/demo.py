"""The README's demo: synthesize a scene, localize it with the best model available, say what is where."""

from __future__ import annotations

from pathlib import Path

from agent.core.dataset import read_dataset
from agent.core.geometry import distance_bin, sector_of
from agent.core.labels import display
from agent.core.predictor import Clip
from training.eval.metrics import match_clip
from training.synth.build import build_dataset
from training.synth.config import preset


def describe(azimuth_deg: float, elevation_deg: float, distance_m: float | None) -> str:
    sector = sector_of(azimuth_deg)
    where = {"front": "in front of you", "back": "behind you"}.get(sector, f"to your {sector}")
    s = f"{where} ({azimuth_deg:+.0f} deg"
    s += f", elevation {elevation_deg:+.0f} deg" if abs(elevation_deg) >= 1 else ""
    s += ")" if distance_m is None else f", {distance_m:.1f} m, {distance_bin(distance_m)})"
    return s


def run_demo(out: str | Path, seed: int = 7, index: int = 0, model_name: str | None = None) -> str:
    from export.cli import DEFAULT_LOCALIZER, make_localizer  # noqa: PLC0415

    cfg = preset("demo")
    build_dataset(out, cfg, 1, seed, start=index, workers=1, progress=False)
    ds = read_dataset(out)
    scene = ds.scenes[0]
    audio, rate = ds.load_audio(scene)
    model = make_localizer(model_name or DEFAULT_LOCALIZER)
    preds = model.localize(Clip(scene.id, audio, rate))
    result = match_clip(scene, preds)
    room = "anechoic" if scene.room is None else f"a room with RT60 {scene.room['rt60_s']:.2f} s"
    lines = [f"binaura demo: {ds.audio_path(scene)} ({scene.duration_s:.0f} s, {rate} Hz, {room}, head {scene.hrtf})",
             f"localized with: {model.name}", ""]
    import numpy as np  # noqa: PLC0415
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415

    from agent.core.geometry import great_circle_deg  # noqa: PLC0415

    match: dict[int, int] = {}
    if preds:
        cost = np.array([[great_circle_deg(p.azimuth_deg, p.elevation_deg, t.azimuth_deg, t.elevation_deg)
                          for p in preds] for t in scene.sources])
        match = dict(zip(*linear_sum_assignment(cost)))
    for i, s in enumerate(scene.sources):
        lines.append(f"{display(s.label).capitalize()} ({s.onset_s:.1f}-{s.offset_s:.1f} s) is "
                     f"{describe(s.azimuth_deg, s.elevation_deg, s.distance_m)}.")
        if i in match:
            p = preds[match[i]]
            what = display(p.label) if p.label else "a source"
            err = great_circle_deg(p.azimuth_deg, p.elevation_deg, s.azimuth_deg, s.elevation_deg)
            lines.append(f"    {model.name} hears {what} {describe(p.azimuth_deg, p.elevation_deg, p.distance_m)}"
                         f": {err:.0f} deg off" + (" (front/back mirror)" if result.pairs and any(
                             pp.front_back and abs(pp.true_azimuth_deg - s.azimuth_deg) < 1e-9
                             for pp in result.pairs) else ""))
        else:
            lines.append(f"    {model.name} missed it")
    extra = len(preds) - len(match)
    if extra > 0:
        lines.append(f"({model.name} also reported {extra} source(s) that are not there)")
    if model.name == "gccphat":
        lines.append("\nThe classical baseline hears interaural time and level differences only: it cannot tell "
                     "front from back, names no classes and gives no distance. The trained spatial encoder "
                     "(issue 3) replaces it as the default.")
    text = "\n".join(lines)
    print(text)
    return text
