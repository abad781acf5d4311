"""`binaura export bundle`: the shipped (or a given) program-aided language model and the shipped
encoder -> one edge bundle folder (docs/bundle.md), written whole or not at all.

The language model's LoRA is merged into its base LLM (the base comes from the user cache, as
training loads it: training/models/llm.py; nothing downloads), exported to ONNX (fp32 and/or
int4) by export/llm_export.py, and the encoder folder is copied in beside it; manifest.json
records every file's SHA-256, the contract, the source checkpoints and the tools' versions.
"""

from __future__ import annotations

import time
from pathlib import Path

from agent.core.errors import BinauraError

PRECISION_CHOICES = {"int4": ("int4",), "fp32": ("fp32",), "both": ("fp32", "int4")}


def cmd_export_bundle(args) -> int:
    from agent.localize.encoder import DEFAULT_ENCODER_DIR  # noqa: PLC0415
    from export.bundle import build_llm_bundle  # noqa: PLC0415
    from export.lalm_cli import DEFAULT_MODEL, is_program_model, model_folder  # noqa: PLC0415
    from export.llm_export import LlmExportConfig  # noqa: PLC0415

    folder = model_folder(args.model)
    if folder is None:
        where = f"the shipped default ({DEFAULT_MODEL}) is missing" if args.model == "default" else "no lalm.json"
        raise BinauraError(f"--model {args.model}: not a binaura language-model folder ({where})")
    if not is_program_model(folder):
        raise BinauraError(f"--model {args.model}: a model that answers in sentences; the bundle answers with a "
                           f"program-aided model (`binaura train parse`), whose prompt needs no audio projector")
    cfg = LlmExportConfig(precisions=PRECISION_CHOICES[args.precision], embeddings_dtype=args.embeddings)
    encoder = Path(args.encoder) if args.encoder else DEFAULT_ENCODER_DIR
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    summary = build_llm_bundle(args.out, base=args.base, lalm=str(folder), cfg=cfg, threads=args.threads,
                               encoder=encoder)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    width = max(len(rel) for rel in summary["bytes"])
    for rel, n in sorted(summary["bytes"].items()):
        print(f"  {rel:<{width}}  {n / 1e6:9.1f} MB")
    print(f"bundle -> {args.out} ({sum(summary['bytes'].values()) / 1e6:.1f} MB; model {folder}, encoder {encoder}; "
          f"{wall:.0f} s wall, {cpu:.0f} s CPU in this process)")
    return 0


def add_bundle_parser(x) -> None:
    """`bundle` under the `export` subcommand."""
    b = x.add_parser("bundle", help="language model (LoRA merged, ONNX fp32/int4) + the encoder -> one verified "
                                    "edge bundle folder with manifest.json (docs/bundle.md)")
    b.add_argument("--out", required=True, help="bundle folder to write (replaced atomically; a folder that is not "
                                                "a bundle is refused)")
    b.add_argument("--model", default="default", help="program-aided language model: default (the shipped one) or "
                                                      "a folder (RUN/model from `binaura train parse`)")
    b.add_argument("--precision", choices=tuple(PRECISION_CHOICES), default="both",
                   help="decoders to write: int4 (the edge's, MatMulNBits), fp32, or both (default)")
    b.add_argument("--encoder", help="exported encoder folder (default: the shipped agent/assets/encoder)")
    b.add_argument("--base", help="base LLM folder or local HF-cache name, when not the one the model records "
                                  "(the weights' fingerprint must match)")
    b.add_argument("--embeddings", choices=("float16", "float32"), default="float16",
                   help="the token-embedding table's dtype")
    b.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the verifying load")
    b.set_defaults(func=cmd_export_bundle)
