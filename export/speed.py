"""`binaura bench speed`: encoder cost per hop on this CPU, ONNX Runtime beside torch eager.

Every backend runs the same streaming path (StreamingEncoder: numpy features, one
emit per hop; stateful where the export has the front/back pair: each front frame
computed once), one thread each, on the same audio; the runtime's default is also
timed the older way, re-running windows with the network's full left context.
encoder_rtf = compute time / audio time (features included).
"""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from agent.localize.encoder import EncoderFrames, EncoderRuntime, StreamingEncoder

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "training" / "assets" / "encoder_small.pt"
HOP_KEYS = ("encoder_ms_per_hop", "encoder_ms_per_hop_p95", "encoder_rtf")


class _TorchRuntime:
    """A training checkpoint behind the interface StreamingEncoder uses (torch eager)."""

    def __init__(self, checkpoint):
        from training.models.encoder import load_checkpoint  # noqa: PLC0415

        self.model, _ = load_checkpoint(checkpoint)
        self.features = self.model.cfg.features
        self.time_pool = self.model.time_pool
        self.context_left, self.context_right = self.model.time_context()
        self.front_context_left, self.front_context_right = self.model.front_context()
        self.history_frames = self.model.history_frames()
        self.can_stream_state = True
        self.head_scale = 1.0

    def run(self, spatial: np.ndarray, semantic: np.ndarray) -> EncoderFrames:
        return EncoderFrames(0, *self.model.infer(spatial, semantic))

    def run_front(self, spatial: np.ndarray, semantic: np.ndarray):
        import torch  # noqa: PLC0415

        with torch.no_grad():
            return tuple(t.numpy() for t in self.model.front(torch.from_numpy(spatial[None]),
                                                             torch.from_numpy(semantic[None])))

    def run_back(self, spatial_front: np.ndarray, semantic_front: np.ndarray) -> EncoderFrames:
        import torch  # noqa: PLC0415

        with torch.no_grad():
            out = self.model.back(torch.from_numpy(spatial_front), torch.from_numpy(semantic_front))
        return EncoderFrames(0, *(t[0].numpy() for t in out))


def _stream(rt, audio: np.ndarray, hop_frames: int, repeats: int, stateful: bool | None = None) -> dict:
    rate = rt.features.sample_rate_hz
    hop_samples = hop_frames * rt.time_pool * rt.features.hop_length
    best = None
    for _ in range(repeats):
        enc = StreamingEncoder(rt, hop_frames, stateful=stateful)
        times, frames = [], 0
        t_all = time.perf_counter()
        for i in range(0, audio.shape[1], hop_samples):
            t = time.perf_counter()
            out = enc.push(audio[:, i:i + hop_samples])
            if out is not None:
                times.append(time.perf_counter() - t)
                frames += out.n
        total = time.perf_counter() - t_all
        run = {"encoder_ms_per_hop": 1e3 * float(np.median(times)), "encoder_ms_per_hop_p95": 1e3 * float(
            np.percentile(times, 95)), "encoder_rtf": total / (audio.shape[1] / rate), "hops": len(times),
            "frames": frames}
        if best is None or run["encoder_rtf"] < best["encoder_rtf"]:
            best = run
    best["hop_s"] = hop_samples / rate
    best["stateful"] = enc.stateful
    best["latency_s"] = StreamingEncoder(rt, hop_frames).latency_s
    return best


def bench_speed(model: str | None = None, checkpoint: str | None = None, seconds: float = 30.0,
                hop_frames: int = 5, repeats: int = 3, torch_baseline: bool = True) -> dict:
    import onnxruntime  # noqa: PLC0415

    rt = EncoderRuntime(model, threads=1)  # as the agent runs it: mirror averaging as the manifest says
    rng = np.random.default_rng(0)
    n = int(seconds * rt.features.sample_rate_hz)
    # Content does not change the cost; correlated noise keeps the features in range.
    base = rng.standard_normal(n + 30).astype(np.float32) * 0.05
    audio = np.stack([base[30:], base[:-30]])
    r_rt = _stream(rt, audio, hop_frames, repeats)
    r_other = _stream(EncoderRuntime(model, threads=1, mirror_tta=not rt.mirror_tta), audio, hop_frames, repeats)
    r_1, r_m = (r_other, r_rt) if rt.mirror_tta else (r_rt, r_other)
    # the top-level figures are the runtime's default, what users run
    result = {"model": str(rt.root), "backend": f"onnxruntime {onnxruntime.__version__} CPU, 1 thread, fp32"
                                                f"{', mirror averaging' if rt.mirror_tta else ''}",
              "mirror_tta": rt.mirror_tta, "audio_s": seconds, **r_rt,
              "ttft_ms": None, "decode_tok_s": None,  # the language model arrives with its own issue
              "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
              "cpu_count": os.cpu_count()}
    backends = {"onnxruntime-fp32": {k: r_1[k] for k in HOP_KEYS},
                "onnxruntime-fp32 + mirror": {k: r_m[k] for k in HOP_KEYS}}
    if r_rt["stateful"]:  # the same default the older way: windows re-run with the full left context
        r_w = _stream(rt, audio, hop_frames, repeats, stateful=False)
        backends[("onnxruntime-fp32 + mirror" if rt.mirror_tta else "onnxruntime-fp32") + ", windows"] = {
            k: r_w[k] for k in HOP_KEYS}
    if "fp16" in rt.manifest["files"]:
        r16 = _stream(EncoderRuntime(model, precision="fp16", threads=1, mirror_tta=False), audio, hop_frames,
                      repeats)
        backends["onnxruntime-fp16"] = {k: r16[k] for k in HOP_KEYS}
    if torch_baseline:
        import torch  # noqa: PLC0415

        torch.set_num_threads(1)
        r_t = _stream(_TorchRuntime(checkpoint or DEFAULT_CHECKPOINT), audio, hop_frames, repeats)
        backends[f"torch-eager {torch.__version__}"] = {k: r_t[k] for k in HOP_KEYS}
    result["backends"] = backends
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def speed_table(r: dict) -> str:
    lines = [f"encoder speed: {r['audio_s']:.0f} s of audio, hop {r['hop_s']:.2f} s, streaming latency "
             f"{r['latency_s']:.2f} s, {'stateful' if r.get('stateful') else 'windowed'} streaming, "
             f"{r['machine']}", "",
             f"{'backend':<37} {'ms/hop (median)':>16} {'ms/hop (p95)':>13} {'RTF':>8}"]
    default = "onnxruntime-fp32 + mirror" if r.get("mirror_tta") else "onnxruntime-fp32"
    for name, b in r["backends"].items():
        mark = " *" if name == default else ""
        lines.append(f"{name + mark:<37} {b['encoder_ms_per_hop']:>16.2f} {b['encoder_ms_per_hop_p95']:>13.2f} "
                     f"{b['encoder_rtf']:>8.4f}")
    lines.append("* the runtime's default (the export's manifest)")
    lines.append(f"\npeak RSS {r['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)
