"""Scene-synthesis speed on one core: anechoic and reverberant scenes measured side by side."""

from __future__ import annotations

import os
import platform
import time

from training.synth.config import preset
from training.synth.scenes import render_scene, sample_spec


def synth_speed(n_scenes: int, seed: int = 0) -> dict:
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "threads": 1, "scenes": n_scenes}
    for kind, p in (("anechoic", 0.0), ("reverberant", 1.0)):
        cfg = preset("train")
        cfg.p_reverberant = p
        render_scene(sample_spec(cfg, seed, 10_000), cfg)  # warm caches (HRTF, heads)
        t0 = time.perf_counter()
        n_src = 0
        for i in range(n_scenes):
            spec = sample_spec(cfg, seed, i)
            n_src += len(spec.sources)
            render_scene(spec, cfg)
        dt = time.perf_counter() - t0
        out[kind] = {"scenes_per_s_per_core": round(n_scenes / dt, 2), "ms_per_scene": round(1000 * dt / n_scenes, 1),
                     "mean_sources": round(n_src / n_scenes, 2)}
    return out


def synth_speed_table(r: dict) -> str:
    lines = [f"scene synthesis, 5 s at 48 kHz, one process ({r['machine']})",
             "room         scenes/s/core  ms/scene  sources/scene"]
    for kind in ("anechoic", "reverberant"):
        k = r[kind]
        lines.append(f"{kind:<12} {k['scenes_per_s_per_core']:>13}  {k['ms_per_scene']:>8}  {k['mean_sources']:>13}")
    return "\n".join(lines)
