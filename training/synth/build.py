"""Build a dataset folder: render scenes in parallel, then write the index atomically.

Each wav is written to a temporary name and renamed, and scenes.jsonl / qa.jsonl
are written only after every scene is rendered, so an interrupted run leaves
no file that looks complete. Scenes are deterministic from (seed, index):
``start`` renders any slice alone, and training/synth/shards.py joins slices rendered by
separate processes or machines into the folder one build writes (docs/cluster.md).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

from tqdm import tqdm

from agent.core.dataset import AUDIO_DIR, QA_FILE, SCENES_FILE, write_json, write_jsonl, write_wav
from agent.core.errors import ConfigError
from agent.core.scene import Scene
from training.synth.config import SynthConfig
from training.synth.scenes import render_scene, sample_spec

#: The build's record: {"seed", "start", "scenes", "config"}: the scene indices start..start+scenes-1
#: of (config, seed). Its scenes.jsonl is written last and marks the folder complete.
SYNTH_CONFIG_FILE = "synth_config.json"

_CFG: SynthConfig | None = None
_OUT: Path | None = None


def _init(cfg: SynthConfig, out: Path) -> None:
    global _CFG, _OUT
    _CFG, _OUT = cfg, out
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _render_one(args: tuple[int, int]) -> dict:
    seed, index = args
    spec = sample_spec(_CFG, seed, index)
    audio, scene = render_scene(spec, _CFG)
    write_wav(_OUT / scene.audio, audio, _CFG.sample_rate_hz, _CFG.sample_format)
    return scene.to_json()


def write_synth_config(out: Path, seed: int, start: int, n_scenes: int, config: dict) -> None:
    """Write out/synth_config.json: what the folder holds (config: SynthConfig.to_dict() or its JSON)."""
    write_json(out / SYNTH_CONFIG_FILE, {"seed": seed, "start": start, "scenes": n_scenes, "config": config})


def _cores() -> int:
    """The cores this process may run on (a Slurm task's allocation, not the whole node's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        return os.cpu_count() or 1


def build_dataset(out: str | os.PathLike, cfg: SynthConfig, n_scenes: int, seed: int,
                  start: int = 0, workers: int | None = None, with_qa: bool = True,
                  progress: bool = True) -> list[Scene]:
    """Render scenes start..start+n_scenes-1 into out; returns their labels."""
    from agent.core.scene import scene_from_json  # noqa: PLC0415
    from training.qa.generate import generate_qa  # noqa: PLC0415

    problems = []
    if n_scenes < 1:
        problems.append(f"--scenes must be >= 1, got {n_scenes}")
    if start < 0:
        problems.append(f"--start must be >= 0, got {start}")
    if seed < 0:
        problems.append(f"--seed must be >= 0, got {seed}")
    if problems:
        raise ConfigError(problems, "synth arguments")
    cfg.validate()
    out = Path(out)
    (out / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (SCENES_FILE, QA_FILE):  # an old index must not describe new audio
        (out / stale).unlink(missing_ok=True)
    workers = workers or max(1, min(_cores(), n_scenes))
    jobs = [(seed, i) for i in range(start, start + n_scenes)]
    bar = tqdm(total=n_scenes, desc="synth", unit="scene", disable=not progress)
    rows: list[dict] = []
    if workers == 1:
        _init(cfg, out)
        for job in jobs:
            rows.append(_render_one(job))
            bar.update()
    else:
        # Load the HRTF once in the parent so forked workers share it.
        from training.synth.hrtf import load_kemar  # noqa: PLC0415

        load_kemar(cfg.sample_rate_hz)
        ctx = mp.get_context("fork")
        with ctx.Pool(workers, initializer=_init, initargs=(cfg, out)) as pool:
            for row in pool.imap(_render_one, jobs, chunksize=4):
                rows.append(row)
                bar.update()
    bar.close()
    scenes = [scene_from_json(r)[0] for r in rows]
    if with_qa:
        qa = generate_qa(scenes, seed=seed, split=cfg.split)
        write_jsonl(out / QA_FILE, [q.to_json() for q in qa])
    write_synth_config(out, seed, start, n_scenes, cfg.to_dict())
    write_jsonl(out / SCENES_FILE, rows)  # last: its presence marks a complete dataset
    return scenes
