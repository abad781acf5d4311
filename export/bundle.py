"""Write a bundle folder's manifest.json around its files, and build the bundle.

`write_manifest` lists every file in the folder with its SHA-256 and size, beside the
contract fields the agent checks (agent.answer.bundle.contract_fields) and the versions of
the tools that built it. `build_llm_bundle` exports a base LLM (the embedded default, a
local folder, or a language-model checkpoint with its LoRA merged) into a fresh folder,
copies an exported encoder folder in beside it when given (`encoder/`: its encoder.json and
every ONNX file that names, checked against its own SHA-256s first), writes the manifest,
verifies the result through the agent's own loaders (read_bundle, a decoder load per precision,
the encoder runtime per precision), and only then swaps it in (agent.core.outdir.output_folder).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shutil
import time
from pathlib import Path

from agent.answer.bundle import (
    BUNDLE_FORMAT,
    ENCODER_MANIFEST,
    FORMAT_VERSION,
    MANIFEST,
    contract_fields,
    read_bundle,
)
from agent.core.dataset import write_json
from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from agent.core.outdir import MARKER, OutputKind, output_folder
from export.llm_export import LlmExportConfig, export_llm

ENCODER_FOLDER = "encoder"
BUNDLE_KIND = OutputKind("bundle", manifest=MANIFEST, names=("*.onnx", "*.onnx.data", "*.npy", "*.json",
                                                              ENCODER_FOLDER))
TOOLS = ("binaura", "torch", "transformers", "peft", "onnx", "onnxruntime", "onnx-ir", "tokenizers", "numpy")


def tool_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(folder: str | os.PathLike, sections: dict) -> dict:
    """manifest.json for every file under `folder` (but itself and the output marker)."""
    folder = Path(folder)
    files = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = f.relative_to(folder).as_posix()
        if rel not in (MANIFEST, MARKER):
            files[rel] = {"sha256": sha256_file(f), "bytes": f.stat().st_size}
    manifest = {"format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION,
                "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                **contract_fields(), **sections, "tools": tool_versions(), "files": files}
    write_json(folder / MANIFEST, manifest)
    return manifest


def load_source(base: str | None = None, lalm: str | None = None) -> tuple:
    """(model, tokenizer, source record): a language-model checkpoint (its LoRA merged at
    export) or a base LLM (None: the embedded default)."""
    if lalm is not None:
        from training.models.lalm import load_lalm  # noqa: PLC0415

        model, meta = load_lalm(lalm, base=base)
        return model, model.tokenizer, {"lalm": str(lalm), "lalm_sha256": sha256_file(Path(lalm) / "weights.safetensors"),
                                        "base": meta["config"].get("base"), "fingerprint": meta["llm"],
                                        "output": meta["config"].get("output", "reply"), "stage": meta.get("stage")}
    from training.models.llm import llm_fingerprint, load_base_llm  # noqa: PLC0415

    model, tok = load_base_llm(base)
    return model, tok, {"base": base, "fingerprint": llm_fingerprint(model, tok)}


def copy_encoder(src: str | os.PathLike, folder: str | os.PathLike) -> dict:
    """Copy an exported encoder folder (encoder.json and every ONNX file it names: each precision,
    the stateful front/back pair) into `folder`/encoder, each file checked against the SHA-256
    its encoder.json records before it is copied. Returns the manifest's `encoder` section."""
    src = Path(src)
    try:
        m = json.loads((src / ENCODER_MANIFEST).read_text())
        stream = (m.get("streaming") or {}).get("files") or {}
        names = list(dict.fromkeys([*m["files"].values(), *(f for pair in stream.values() for f in pair.values())]))
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise BinauraError(f"{src}: not an exported encoder folder ({ENCODER_MANIFEST} unreadable: {e}); export "
                           f"one with `binaura export encoder`") from e
    bad = [n for n in names if not (src / n).is_file() or sha256_file(src / n) != m.get("sha256", {}).get(n)]
    if bad:
        raise BinauraError(f"{src}: {', '.join(bad)} missing or not matching {ENCODER_MANIFEST}'s SHA-256; "
                           f"re-export the encoder")
    dst = Path(folder) / ENCODER_FOLDER
    dst.mkdir()
    for name in [ENCODER_MANIFEST, *names]:
        shutil.copyfile(src / name, dst / name)
    return {"folder": ENCODER_FOLDER, "source": str(src.resolve()), "precisions": sorted(m["files"]),
            "streaming": sorted(stream), "model_config": (m.get("model_config") or {}).get("name")}


def build_llm_bundle(out: str | os.PathLike, base: str | None = None, lalm: str | None = None,
                     cfg: LlmExportConfig | None = None, threads: int = 1,
                     encoder: str | os.PathLike | None = None) -> dict:
    """Export, copy the encoder (when given), write the manifest, verify through the agent's
    loaders, swap in. Returns a summary (seconds, file sizes in bytes)."""
    from agent.answer.decoder import OnnxDecoder  # noqa: PLC0415
    from agent.localize.encoder import EncoderRuntime  # noqa: PLC0415

    t0 = time.perf_counter()
    model, tok, source = load_source(base, lalm)
    with output_folder(out, BUNDLE_KIND) as tmp:
        sections = {}
        if encoder is not None:
            sections["encoder"] = copy_encoder(encoder, tmp)
        section = export_llm(model, tok, tmp, cfg)
        section["source"] = source
        manifest = write_manifest(tmp, {"llm": section, **sections})
        bundle = read_bundle(tmp)
        for precision in section["decoders"]:
            OnnxDecoder.from_bundle(bundle, precision, threads)
        for precision in sections.get("encoder", {}).get("precisions", ()):
            EncoderRuntime(bundle.encoder, precision)
    return {"seconds": round(time.perf_counter() - t0, 1),
            "bytes": {rel: rec["bytes"] for rel, rec in manifest["files"].items()}}
