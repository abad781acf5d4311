"""`binaura bench agent`: the live agent replayed on benchmark scenes with known truth.

Per scene the shipped encoder streams through the agent's own pipeline (agent/pipeline.py)
block by block, exactly as `binaura listen` runs it, and the tracks are scored against the
scene's sources on the tracker's frame clock:
- coverage: of the time a source is active, the fraction with a live track of its class
  within 20 deg of it (the issue's "within 20 deg of the truth"); beside it, the same for
  the raw frame detections (no tracker: the baseline the tracker must beat);
- id switches per source-minute: changes of the track id that covers a source;
- capture-to-event latency: from a source's true start to the moment its onset event leaves
  the pipeline: the stream time of the end of the block that produced it, plus that
  block's compute time (a block is complete only at its end; the capture side adds nothing);
- question-to-first-token: the answerer's first chunk, asked mid-scene while the stream runs.
Optional long runs: `realtime_s` seconds paced at real time through the threaded runner
(overflows, CPU share of one core), `soak_s` seconds replayed fast (memory trend).
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

from agent.capture import ArraySource
from agent.capture.block import PcmBlock
from agent.core.dataset import Dataset
from agent.core.geometry import great_circle_deg
from agent.localize.encoder import EncoderRuntime
from agent.pipeline import Pipeline, PipelineConfig
from agent.track.events import OnsetEvent
from agent.track.tracker import TrackerConfig

GATE_DEG = 20.0
BLOCK_S = 0.1


def _near(a_az, a_el, b_az, b_el) -> float:
    return float(great_circle_deg(a_az, a_el, b_az, b_el))


def score_scene(rt: EncoderRuntime, scene, audio: np.ndarray, rate: int, cfg: PipelineConfig,
                answerer=None, ask_at_s: float = 3.0) -> dict:
    """One scene through the pipeline: per-source coverage, switches, onset latency."""
    raw_hits = []  # the hops' frame detections, before the tracker (the baseline)
    pipe = Pipeline(rt, cfg, on_detections=raw_hits.extend)
    src = ArraySource(audio, rate, name=scene.id, paced=False, block_s=BLOCK_S)
    snapshots = []  # (frame time, tracks)
    onsets = []  # (event, emit time)
    first_token_s = None
    for block in src.blocks():
        t0 = time.perf_counter()
        events = pipe.process(block)
        emit = block.t_end_s + (time.perf_counter() - t0)
        onsets += [(e, emit) for e in events if isinstance(e, OnsetEvent)]
        if pipe.tracker.t_s is not None and (not snapshots or snapshots[-1][0] != pipe.tracker.t_s):
            snapshots.append((pipe.tracker.t_s, pipe.tracks))
        if answerer is not None and first_token_s is None and block.t_end_s >= ask_at_s:
            t0 = time.perf_counter()
            chunks = iter(answerer("Where is each sound?", pipe))
            next(chunks, None)
            first_token_s = time.perf_counter() - t0
            for _ in chunks:  # the whole answer, as the agent reads it (the stream waits meanwhile)
                pass
    pipe.finish()
    per_source = []
    for s in scene.sources:
        active = [(t, tr) for t, tr in snapshots if s.onset_s <= t < s.offset_s]
        covered, ids = 0, []
        for _, tracks in active:
            near = [(tr.track_id, _near(tr.azimuth_deg, tr.elevation_deg, s.azimuth_deg, s.elevation_deg))
                    for tr in tracks if tr.label == s.label]
            near = [x for x in near if x[1] <= GATE_DEG]
            if near:
                covered += 1
                ids.append(min(near, key=lambda x: x[1])[0])
        raw_active = [f for f in raw_hits if s.onset_s <= f.t_s < s.offset_s]
        raw_cov = sum(any(d.label == s.label and _near(d.azimuth_deg, d.elevation_deg, s.azimuth_deg,
                                                       s.elevation_deg) <= GATE_DEG for d in f.detections)
                      for f in raw_active)
        latency = None
        for e, emit in onsets:
            if e.label == s.label and s.onset_s - 0.5 <= e.t_start <= s.offset_s and \
                    _near(e.azimuth_deg, e.elevation_deg, s.azimuth_deg, s.elevation_deg) <= 2 * GATE_DEG:
                latency = emit - s.onset_s
                break
        per_source.append({"label": s.label, "active_s": s.offset_s - s.onset_s, "snapshots": len(active),
                           "covered": covered, "raw_frames": len(raw_active), "raw_covered": int(raw_cov),
                           "switches": int(sum(a != b for a, b in zip(ids, ids[1:]))), "onset_latency_s": latency})
    return {"scene": scene.id, "sources": per_source, "first_token_s": first_token_s,
            "compute_s": pipe.counters["compute_s"], "audio_s": pipe.counters["audio_s"]}


def bench_agent(ds: Dataset, scenes: int = 100, encoder: str | None = None, hop_frames: int = 1,
                answerer=None, progress: bool = True, tracker: TrackerConfig | None = None) -> dict:
    rt = EncoderRuntime(encoder, threads=1)
    cfg = PipelineConfig(hop_frames=hop_frames, **({"tracker": tracker} if tracker is not None else {}))
    chosen = [s for s in ds.scenes if 1 <= len(s.sources) <= 3][:scenes]
    results = []
    for i, scene in enumerate(chosen):
        audio, rate = ds.load_audio(scene)
        results.append(score_scene(rt, scene, audio, rate, cfg, answerer))
        if progress and (i + 1) % 10 == 0:
            print(f"  bench agent: {i + 1}/{len(chosen)} scenes", flush=True)
    src = [s for r in results for s in r["sources"]]
    lat = np.array([s["onset_latency_s"] for s in src if s["onset_latency_s"] is not None])
    minutes = sum(s["active_s"] for s in src) / 60.0
    ft = np.array([r["first_token_s"] for r in results if r["first_token_s"] is not None])
    out = {
        "scenes": len(results), "sources": len(src), "hop_frames": hop_frames, "tracker": cfg.tracker.to_dict(),
        "coverage_20deg": sum(s["covered"] for s in src) / max(1, sum(s["snapshots"] for s in src)),
        "raw_coverage_20deg": sum(s["raw_covered"] for s in src) / max(1, sum(s["raw_frames"] for s in src)),
        "id_switches_per_source_minute": sum(s["switches"] for s in src) / max(minutes, 1e-9),
        "onset_found": float(len(lat) / max(1, len(src))),
        "onset_latency_p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
        "onset_latency_p95_s": float(np.percentile(lat, 95)) if len(lat) else None,
        "realtime_factor": sum(r["audio_s"] for r in results) / max(1e-9, sum(r["compute_s"] for r in results)),
        "first_token_p95_s": float(np.percentile(ft, 95)) if len(ft) else None,
        "answerer": getattr(answerer, "name", None),
    }
    return out


def realtime_run(audio: np.ndarray, rate: int, encoder: str | None = None, hop_frames: int = 1) -> dict:
    """Audio paced at real time through the threaded runner, as a live capture runs: the
    overflows of every queue, and the CPU used as a share of one core."""
    from agent.run import Outputs, Runner  # noqa: PLC0415

    rt = EncoderRuntime(encoder, threads=1)
    pipe = Pipeline(rt, PipelineConfig(hop_frames=hop_frames))
    src = ArraySource(audio, rate, name="realtime", paced=True, block_s=BLOCK_S)
    outputs = Outputs([])
    runner = Runner(src, pipe, outputs, paced=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    runner.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    counters = {**src.counters(), **runner.counters}
    return {"seconds": audio.shape[-1] / rate, "wall_s": wall, "cpu_share_of_one_core": cpu / wall,
            "overflows": int(sum(v for k, v in counters.items() if "overflow" in k)),
            "lost_s": pipe.counters["lost_s"], "counters": counters}


def _rss_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def soak_run(audio: np.ndarray, rate: int, seconds: float, encoder: str | None = None, hop_frames: int = 1,
             sample_every_s: float = 60.0) -> dict:
    """`seconds` of stream (the audio looped) replayed fast: resident memory every
    `sample_every_s` of stream, and its trend (MB per hour of stream, least squares after
    the first two samples, when the buffers have filled)."""
    rt = EncoderRuntime(encoder, threads=1)
    pipe = Pipeline(rt, PipelineConfig(hop_frames=hop_frames))
    block = int(BLOCK_S * rate)
    t, k, samples, next_sample = 0.0, 0, [], 0.0
    n = audio.shape[-1]
    while t < seconds:
        i = (k * block) % max(1, n - block)
        pipe.process(PcmBlock(t, rate, np.ascontiguousarray(audio[:, i:i + block], np.float32)))
        t += block / rate
        k += 1
        if t >= next_sample:
            samples.append((t, _rss_mb()))
            next_sample += sample_every_s
    pipe.finish()
    ts = np.array([s[0] for s in samples[2:]])
    mb = np.array([s[1] for s in samples[2:]])
    slope = float(np.polyfit(ts / 3600.0, mb, 1)[0]) if len(ts) >= 3 else None
    return {"seconds": seconds, "rss_mb": [round(s[1], 1) for s in samples], "trend_mb_per_hour": slope,
            "rss_first_mb": samples[0][1] if samples else None, "rss_last_mb": samples[-1][1] if samples else None}
