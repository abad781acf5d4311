"""`binaura export encoder`: a training checkpoint -> ONNX (fp32 and fp16) + manifest, verified.

The STFT and all feature maths stay outside the graph (agent/core/features.py,
numpy): ONNX Runtime's CUDA provider has no STFT kernel, and the agent and
training then share one feature implementation. The graph takes feature frames
with a dynamic time axis. After writing, the export is loaded back through the
agent's own runtime and compared with torch on the given clips (or on noise).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import warnings
from pathlib import Path

import numpy as np
import torch

from agent.core.dataset import write_json
from agent.core.errors import BinauraError
from agent.core.features import compute_features
from agent.core.geometry import great_circle_deg
from agent.core.outdir import OutputKind, output_folder
from agent.core.seld import DecodeConfig, decode_clip
from agent.localize.encoder import (
    CONVENTION,
    MANIFEST,
    MANIFEST_FORMAT,
    OUTPUTS,
    EncoderRuntime,
    StreamingEncoder,
    sha256_file,
)
from training.models.encoder import BinauralEncoder, load_checkpoint

OPSET = 17
FRONT_OUTPUTS = ("spatial_front", "semantic_front")
#: An export folder: its manifest and ONNX files (how one made before output markers is recognised).
EXPORT_KIND = OutputKind("encoder-export", manifest=MANIFEST, names=("encoder*.onnx",))


@dataclasses.dataclass(frozen=True)
class ExportGates:
    """What an export must meet before it replaces anything (checked on the verify clips).
    fp32 and the stateful stream must reproduce torch / the whole-clip pass to rounding;
    fp16 must decode the same classes and may move a direction by at most one polar bin
    (its most probable bin can change on a near tie: 360 / polar_bins degrees)."""

    fp32_max_abs_diff: float = 1e-4
    fp32_max_direction_diff_deg: float = 0.5
    stream_fp32_max_abs_diff: float = 1e-4
    fp16_max_log_distance_diff: float = 0.05
    fp16_max_direction_diff_deg: float | None = None  # None: one polar bin of the model

    def failures(self, report: dict, polar_bins: int) -> list[str]:
        """The gates `report` (export_encoder's parity report) misses, each named with its figure."""
        out = []
        fp32 = report["fp32"]
        worst = max(fp32["max_abs_diff"], key=fp32["max_abs_diff"].get)
        if fp32["max_abs_diff"][worst] > self.fp32_max_abs_diff:
            out.append(f"fp32 ONNX differs from torch by {fp32['max_abs_diff'][worst]:.3g} on {worst} "
                       f"(allowed {self.fp32_max_abs_diff:g})")
        fp16_deg = self.fp16_max_direction_diff_deg or 360.0 / polar_bins
        for prec, deg in (("fp32", self.fp32_max_direction_diff_deg), ("fp16", fp16_deg)):
            r = report.get(prec)
            if r is None:
                continue
            if r["same_decoded_classes"] != r["clips"]:
                out.append(f"{prec} ONNX decodes other classes than torch on "
                           f"{r['clips'] - r['same_decoded_classes']} of {r['clips']} clips")
            if r["max_direction_diff_deg"] > deg:
                out.append(f"{prec} ONNX moves a decoded direction by {r['max_direction_diff_deg']:.2f} deg "
                           f"(allowed {deg:g})")
        if "fp16" in report and report["fp16"]["max_abs_diff"]["log_distance"] > self.fp16_max_log_distance_diff:
            out.append(f"fp16 ONNX differs from torch by {report['fp16']['max_abs_diff']['log_distance']:.3g} "
                       f"in log-distance (allowed {self.fp16_max_log_distance_diff:g})")
        st = report.get("stream_fp32")
        if st is not None:
            worst = max(st["max_abs_diff"], key=st["max_abs_diff"].get)
            if st["max_abs_diff"][worst] > self.stream_fp32_max_abs_diff:
                out.append(f"the stateful stream differs from the whole-clip pass by {st['max_abs_diff'][worst]:.3g} "
                           f"on {worst} (allowed {self.stream_fp32_max_abs_diff:g})")
        return out


def _to_onnx(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
             dynamic_axes: dict) -> None:
    """torch.onnx.export with this project's settings (opset, TorchScript exporter, folding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and folding notes
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def _example_features(model: BinauralEncoder, n_frames: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    f = model.cfg.features
    return torch.randn(1, 6, n_frames, f.n_mels), torch.randn(1, n_frames, f.n_mels)


_FEATURE_AXES = {"spatial": {0: "batch", 2: "frames"}, "semantic": {0: "batch", 1: "frames"}}


def _frame_axes(names) -> dict:
    return {n: {0: "batch", 1: "out_frames"} for n in names}


def _export_onnx(model: BinauralEncoder, path: Path) -> None:
    _to_onnx(model, _example_features(model), path, ["spatial", "semantic"], list(OUTPUTS),
             {**_FEATURE_AXES, **_frame_axes(OUTPUTS)})


class _Part(torch.nn.Module):
    """One method of the encoder (`front` or `back`) as a module to export."""

    def __init__(self, model: BinauralEncoder, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, a, b):
        return getattr(self.model, self.method)(a, b)


def _export_stream_pair(model: BinauralEncoder, front: Path, back: Path) -> None:
    """The network cut after the per-frame front (CNN): front.onnx (features -> front frames)
    and back.onnx (front frames -> the five outputs), for the stateful stream."""
    spatial, semantic = _example_features(model)
    with torch.no_grad():
        hs, hm = model.front(spatial, semantic)
    _to_onnx(_Part(model, "front").eval(), (spatial, semantic), front, ["spatial", "semantic"],
             list(FRONT_OUTPUTS), {**_FEATURE_AXES, **_frame_axes(FRONT_OUTPUTS)})
    _to_onnx(_Part(model, "back").eval(), (hs, hm), back, list(FRONT_OUTPUTS), list(OUTPUTS),
             {**_frame_axes(FRONT_OUTPUTS), **_frame_axes(OUTPUTS)})


def stream_parity(runtime: EncoderRuntime, audio: list[tuple[np.ndarray, int]], hop_frames: int = 5) -> dict:
    """Max |stateful stream - whole-clip pass| per output over the clips (the runtime's
    mirror setting), audio pushed in hops of hop_frames output frames."""
    from agent.core.audio import resample_to  # noqa: PLC0415

    worst = dict.fromkeys(OUTPUTS, 0.0)
    f = runtime.features
    for a, r in audio:
        a = resample_to(a, r, f.sample_rate_hz)
        ref = runtime.run_audio(a, f.sample_rate_hz)
        enc = StreamingEncoder(runtime, hop_frames, stateful=True)
        step = hop_frames * runtime.time_pool * f.hop_length
        parts = [enc.push(a[:, i:i + step]) for i in range(0, a.shape[1], step)] + [enc.flush()]
        parts = [x for x in parts if x is not None]
        for name in OUTPUTS:
            got = np.concatenate([getattr(x, name) for x in parts])
            n = min(len(got), len(getattr(ref, name)))
            worst[name] = max(worst[name], float(np.abs(got[:n] - getattr(ref, name)[:n]).max()))
    return {"max_abs_diff": worst, "clips": len(audio), "hop_frames": hop_frames}


def _to_fp16(src: Path, dst: Path) -> None:
    import onnx  # noqa: PLC0415
    from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: PLC0415

    m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(m, str(dst))


def parity(model: BinauralEncoder, runtime: EncoderRuntime, inputs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Max |torch - ONNX| per output over the inputs, and whether decoded classes agree."""
    dc = runtime.decode
    worst = dict.fromkeys(OUTPUTS, 0.0)
    same_sources = 0
    max_dir_diff = 0.0
    for sp, se in inputs:
        ref = model.infer(sp, se)
        got = runtime.run(sp, se)
        for name, r in zip(OUTPUTS, ref, strict=True):
            worst[name] = max(worst[name], float(np.abs(r - getattr(got, name)).max()))
        a = decode_clip(ref[0], ref[1], runtime.slot_labels, runtime.output_rate_hz, dc)
        b = decode_clip(got.accdoa, got.log_distance, runtime.slot_labels, runtime.output_rate_hz, dc)
        if [s.label for s in a] == [s.label for s in b]:
            same_sources += 1
            for x, y in zip(a, b, strict=True):
                max_dir_diff = max(max_dir_diff, float(great_circle_deg(x.azimuth_deg, x.elevation_deg,
                                                                        y.azimuth_deg, y.elevation_deg)))
    return {"max_abs_diff": worst, "clips": len(inputs), "same_decoded_classes": same_sources,
            "max_direction_diff_deg": max_dir_diff}


def export_encoder(checkpoint: str | os.PathLike, out: str | os.PathLike, fp16: bool = True,
                   verify_audio: list[tuple[np.ndarray, int]] | None = None, mirror_tta: bool = False,
                   gates: ExportGates | None = None) -> dict:
    """Write OUT/encoder.onnx (+ encoder.fp16.onnx) and OUT/encoder.json; returns the manifest.
    mirror_tta: the manifest tells the runtime to average each window with its left-right
    mirror by default (parity is checked on the single pass either way). The export is
    built beside OUT and replaces it only when every gate holds (ExportGates; BinauraError
    naming each miss otherwise), and only if OUT is empty or an earlier export."""
    gates = gates or ExportGates()
    model, ck = load_checkpoint(checkpoint)
    model.eval()
    with output_folder(out, EXPORT_KIND) as tmp:
        manifest = _write_export(model, ck, Path(checkpoint), tmp, fp16, verify_audio, mirror_tta)
        manifest["gates"] = dataclasses.asdict(gates)
        write_json(tmp / MANIFEST, manifest)
        failed = gates.failures(manifest["parity"], model.cfg.polar_bins)
        if failed:
            raise BinauraError(f"{checkpoint}: the export fails its checks, so {out} was left as it was: "
                               + "; ".join(failed))
    return manifest


def _write_export(model: BinauralEncoder, ck: dict, checkpoint: Path, tmp: Path, fp16: bool,
                  verify_audio: list[tuple[np.ndarray, int]] | None, mirror_tta: bool) -> dict:
    """The ONNX files and manifest in `tmp`, with the parity report measured on them."""
    files = {"fp32": "encoder.onnx"}
    _export_onnx(model, tmp / files["fp32"])
    stream_files = {"fp32": {"front": "encoder.front.onnx", "back": "encoder.back.onnx"}}
    _export_stream_pair(model, tmp / stream_files["fp32"]["front"], tmp / stream_files["fp32"]["back"])
    if fp16:
        files["fp16"] = "encoder.fp16.onnx"
        _to_fp16(tmp / files["fp32"], tmp / files["fp16"])
        stream_files["fp16"] = {k: v.replace(".onnx", ".fp16.onnx") for k, v in stream_files["fp32"].items()}
        for k in ("front", "back"):
            _to_fp16(tmp / stream_files["fp32"][k], tmp / stream_files["fp16"][k])
    all_files = [*files.values(), *(v for d in stream_files.values() for v in d.values())]
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415

    left, right = model.time_context()
    cfg = model.cfg
    manifest = {
        "format": MANIFEST_FORMAT, "coordinate_convention": CONVENTION, "files": files,
        "sha256": {rel: sha256_file(tmp / rel) for rel in all_files},
        # the stateful stream's pair (StreamingEncoder): the network cut after the per-frame front
        "streaming": {"files": stream_files, "front_context_frames": list(model.front_context()),
                      "history_frames": model.history_frames(), "front_outputs": list(FRONT_OUTPUTS)},
        "features": cfg.features.to_dict(), "labels": list(cfg.labels), "time_pool": model.time_pool,
        # output tracks per class: accdoa and log_distance hold tracks x labels slots (track * C + class)
        "tracks": cfg.tracks,
        "context_frames": [left, right], "output_rate_hz": cfg.output_rate_hz, "outputs": list(OUTPUTS),
        "model_config": cfg.to_dict(), "opset": OPSET, "checkpoint_sha256": sha256_file(checkpoint),
        "checkpoint_step": ck.get("step"), "checkpoint_metrics": ck.get("metrics"),
        "decode": ck.get("decode") or dataclasses.asdict(DecodeConfig()),
        # the runtime's default: also run each window left-right mirrored and average it back
        "mirror_tta": bool(mirror_tta),
        "built_with": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                       "python": platform.python_version()},
    }
    write_json(tmp / MANIFEST, manifest)
    runtime = EncoderRuntime(tmp, mirror_tta=False)  # parity: one pass, as torch runs it
    rng = np.random.default_rng(0)
    f = cfg.features
    if verify_audio:
        inputs = [compute_features(a, r, f) for a, r in verify_audio]
    else:
        inputs = [compute_features((rng.standard_normal((2, f.sample_rate_hz * 2)) * 0.05).astype(np.float32),
                                   f.sample_rate_hz, f)]
    report = {"fp32": parity(model, runtime, inputs)}
    if verify_audio:  # the stateful stream against the whole-clip pass, as the agent runs it
        report["stream_fp32"] = stream_parity(EncoderRuntime(tmp, mirror_tta=mirror_tta), verify_audio[:2])
    if fp16:
        report["fp16"] = parity(model, EncoderRuntime(tmp, precision="fp16", mirror_tta=False), inputs)
        if verify_audio:
            report["stream_fp16"] = stream_parity(EncoderRuntime(tmp, precision="fp16", mirror_tta=mirror_tta),
                                                  verify_audio[:2])
    manifest["parity"] = report
    return manifest
