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
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from agent.core.dataset import write_json
from agent.core.features import compute_features
from agent.core.geometry import great_circle_deg
from agent.core.seld import DecodeConfig, decode_clip
from agent.localize.encoder import (
    CONVENTION,
    MANIFEST,
    MANIFEST_FORMAT,
    OUTPUTS,
    EncoderRuntime,
    sha256_file,
)
from training.models.encoder import BinauralEncoder, load_checkpoint

OPSET = 17


def _export_onnx(model: BinauralEncoder, path: Path, n_frames: int = 100) -> None:
    f = model.cfg.features
    spatial = torch.randn(1, 6, n_frames, f.n_mels)
    semantic = torch.randn(1, n_frames, f.n_mels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and folding notes
        torch.onnx.export(
            model, (spatial, semantic), str(path), input_names=["spatial", "semantic"], output_names=list(OUTPUTS),
            dynamic_axes={"spatial": {0: "batch", 2: "frames"}, "semantic": {0: "batch", 1: "frames"},
                          **{o: {0: "batch", 1: "out_frames"} for o in OUTPUTS}},
            opset_version=OPSET, dynamo=False, do_constant_folding=True)


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
        a = decode_clip(ref[0], ref[1], runtime.labels, runtime.output_rate_hz, dc)
        b = decode_clip(got.accdoa, got.log_distance, runtime.labels, runtime.output_rate_hz, dc)
        if [s.label for s in a] == [s.label for s in b]:
            same_sources += 1
            for x, y in zip(a, b, strict=True):
                max_dir_diff = max(max_dir_diff, float(great_circle_deg(x.azimuth_deg, x.elevation_deg,
                                                                        y.azimuth_deg, y.elevation_deg)))
    return {"max_abs_diff": worst, "clips": len(inputs), "same_decoded_classes": same_sources,
            "max_direction_diff_deg": max_dir_diff}


def export_encoder(checkpoint: str | os.PathLike, out: str | os.PathLike, fp16: bool = True,
                   verify_audio: list[tuple[np.ndarray, int]] | None = None, mirror_tta: bool = False) -> dict:
    """Write OUT/encoder.onnx (+ encoder.fp16.onnx) and OUT/encoder.json; returns the manifest.
    mirror_tta: the manifest tells the runtime to average each window with its left-right
    mirror by default (parity is checked on the single pass either way)."""
    model, ck = load_checkpoint(checkpoint)
    model.eval()
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {"fp32": "encoder.onnx"}
    _export_onnx(model, tmp / files["fp32"])
    if fp16:
        files["fp16"] = "encoder.fp16.onnx"
        _to_fp16(tmp / files["fp32"], tmp / files["fp16"])
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415

    left, right = model.time_context()
    cfg = model.cfg
    manifest = {
        "format": MANIFEST_FORMAT, "coordinate_convention": CONVENTION, "files": files,
        "sha256": {rel: sha256_file(tmp / rel) for rel in files.values()},
        "features": cfg.features.to_dict(), "labels": list(cfg.labels), "time_pool": model.time_pool,
        "context_frames": [left, right], "output_rate_hz": cfg.output_rate_hz, "outputs": list(OUTPUTS),
        "model_config": cfg.to_dict(), "opset": OPSET, "checkpoint_sha256": sha256_file(Path(checkpoint)),
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
    if fp16:
        report["fp16"] = parity(model, EncoderRuntime(tmp, precision="fp16", mirror_tta=False), inputs)
    manifest["parity"] = report
    write_json(tmp / MANIFEST, manifest)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return manifest
