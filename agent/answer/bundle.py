"""The edge bundle's manifest: what a bundle folder must hold, checked before anything loads.

A bundle is one folder (ARCHITECTURE.md, "Bundle"): `manifest.json` plus the files it lists.
The manifest records the bundle format and its version, the audio contract, the coordinate
convention, the prompt-template version and the label vocabulary it was built for, the
SHA-256 and size of every file, the versions of the tools that built it, in its `llm` section
the language model's decoders (one per precision), token-embedding table, tokenizer and shape,
and in its `encoder` section the folder holding the exported encoder (its own encoder.json and
ONNX files, every one also checksummed here). `read_bundle` verifies all of it and the tokenizer against the
embedding table, gathering every problem into one message, before a single weight loads
(issue 23, "Bad input"); `agent.answer.decoder` then loads from the verified paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.core import audio
from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from agent.core.geometry import CONVENTION_VERSION
from agent.core.labels import LABELS
from agent.core.prompt import TEMPLATE_VERSION

MANIFEST = "manifest.json"
BUNDLE_FORMAT = "binaura-bundle"
#: Bumped when a reader of an older version could misread a bundle; a newer one is refused.
FORMAT_VERSION = 1
PRECISIONS = ("fp32", "int4")


def audio_contract() -> dict:
    """The audio contract this binaura hears with (agent.core.audio), as the manifest records it."""
    return {"sample_rate_hz": audio.SAMPLE_RATE_HZ, "min_sample_rate_hz": audio.MIN_SAMPLE_RATE_HZ,
            "semantic_sample_rate_hz": audio.SEMANTIC_SAMPLE_RATE_HZ, "channels": list(audio.CHANNELS),
            "clip_duration_s": audio.CLIP_DURATION_S}


def contract_fields() -> dict:
    """The manifest fields that must equal this binaura's own for a bundle to load."""
    return {"audio": audio_contract(), "coordinate_convention": CONVENTION_VERSION,
            "prompt_template": TEMPLATE_VERSION, "labels": list(LABELS)}


@dataclass(frozen=True)
class LlmFiles:
    """The verified language-model part of a bundle: absolute paths and its recorded shape."""

    root: Path
    decoders: dict[str, Path]  # precision -> ONNX decoder
    embeddings: Path  # .npy (vocab_rows, hidden_size), float16 or float32
    tokenizer: Path  # tokenizer.json (Hugging Face tokenizers)
    hidden_size: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int  # rows of the embedding table = width of the decoder's logits
    stop_tokens: tuple[str, ...]
    placeholder_token: str  # the token id written at audio positions before the embeddings replace it
    meta: dict  # the whole `llm` section


def read_manifest(root: str | os.PathLike) -> dict:
    root = Path(root)
    path = root / MANIFEST
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BinauraError(f"{path}: cannot read the bundle manifest ({e}); build a bundle with "
                           f"`binaura export bundle`") from e
    if not isinstance(m, dict) or m.get("format") != BUNDLE_FORMAT:
        raise BinauraError(f"{path}: not a binaura bundle manifest (format {m.get('format') if isinstance(m, dict) else m!r}, "
                           f"expected {BUNDLE_FORMAT!r})")
    return m


def verify_files(root: Path, manifest: dict, problems: list[str]) -> None:
    """Append a line per listed file that is missing, of another size, or of another SHA-256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        problems.append("the manifest lists no files")
        return
    for rel, rec in sorted(files.items()):
        f = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(f"{rel}: a bundle file must be a path inside the bundle")
        elif not f.is_file():
            problems.append(f"{rel} is missing")
        elif f.stat().st_size != rec.get("bytes"):
            problems.append(f"{rel}: {f.stat().st_size} bytes, the manifest says {rec.get('bytes')} (truncated or replaced)")
        elif sha256_file(f) != rec.get("sha256"):
            problems.append(f"{rel}: SHA-256 does not match the manifest (the file was changed)")


def _check_contract(manifest: dict, problems: list[str]) -> None:
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        problems.append(f"format_version {version!r} is not an integer")
    elif version > FORMAT_VERSION:
        problems.append(f"format_version {version} is newer than this binaura reads ({FORMAT_VERSION}); "
                        f"update binaura or rebuild the bundle with this one")
    for key, want in contract_fields().items():
        if manifest.get(key) != want:
            have = manifest.get(key)
            shown = f"{len(have)} labels" if key == "labels" and isinstance(have, list) else repr(have)
            problems.append(f"{key}: the bundle was built for {shown}, this binaura uses "
                            f"{f'{len(want)} labels' if key == 'labels' else repr(want)}")


def npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header, without reading the array."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def _check_llm(root: Path, llm: dict, problems: list[str]) -> LlmFiles | None:
    need = ("decoders", "embeddings", "tokenizer", "hidden_size", "num_layers", "num_kv_heads", "head_dim",
            "vocab_size", "stop_tokens", "placeholder_token")
    missing = [k for k in need if k not in llm]
    if missing:
        problems.append(f"llm: the manifest lacks {missing}")
        return None
    unknown = sorted(set(llm["decoders"]) - set(PRECISIONS))
    if unknown or not llm["decoders"]:
        problems.append(f"llm: decoder precisions {sorted(llm['decoders'])}, allowed {list(PRECISIONS)}")
    emb, tok = root / llm["embeddings"], root / llm["tokenizer"]
    if not (emb.is_file() and tok.is_file()):
        return None  # already reported by verify_files
    try:
        shape, dtype = npy_shape(emb)
    except (OSError, ValueError) as e:
        problems.append(f"{llm['embeddings']}: not a .npy array ({e})")
        return None
    if len(shape) != 2 or shape != (llm["vocab_size"], llm["hidden_size"]) or dtype not in (np.float16, np.float32):
        problems.append(f"{llm['embeddings']}: shape {shape} {dtype}, expected ({llm['vocab_size']}, "
                        f"{llm['hidden_size']}) float16 or float32")
    from tokenizers import Tokenizer  # noqa: PLC0415

    try:
        tokenizer = Tokenizer.from_file(str(tok))
    except Exception as e:  # noqa: BLE001 (tokenizers raises plain Exception on a bad file)
        problems.append(f"{llm['tokenizer']}: not a tokenizers file ({e})")
        return None
    n = tokenizer.get_vocab_size(with_added_tokens=True)
    if n > shape[0] or n != llm.get("tokenizer_vocab_size", n):
        problems.append(f"{llm['tokenizer']}: the tokenizer has {n} tokens; the decoder's embedding table has "
                        f"{shape[0]} rows and the manifest records {llm.get('tokenizer_vocab_size')} tokens "
                        f"(a tokenizer from another model)")
    for t in (*llm["stop_tokens"], llm["placeholder_token"]):
        if tokenizer.token_to_id(t) is None:
            problems.append(f"{llm['tokenizer']}: has no token {t!r} (the manifest's stop/placeholder token)")
    return LlmFiles(root=root, decoders={p: root / r for p, r in llm["decoders"].items()}, embeddings=emb,
                    tokenizer=tok, hidden_size=int(llm["hidden_size"]), num_layers=int(llm["num_layers"]),
                    num_kv_heads=int(llm["num_kv_heads"]), head_dim=int(llm["head_dim"]),
                    vocab_size=int(llm["vocab_size"]), stop_tokens=tuple(llm["stop_tokens"]),
                    placeholder_token=str(llm["placeholder_token"]), meta=llm)


ENCODER_MANIFEST = "encoder.json"  # agent.localize.encoder.MANIFEST (not imported: this module loads nothing)


def _check_encoder(root: Path, enc, listed: set[str], problems: list[str]) -> Path | None:
    """The encoder folder of the `encoder` section, every file its encoder.json names being
    listed (checksummed) in the bundle's files; None (with a problem) otherwise."""
    folder = enc.get("folder") if isinstance(enc, dict) else None
    if not isinstance(folder, str) or not folder or Path(folder).is_absolute() or ".." in Path(folder).parts:
        problems.append(f"encoder: the section must name its folder inside the bundle, got {enc!r}")
        return None
    rel = f"{folder}/{ENCODER_MANIFEST}"
    if rel not in listed:
        problems.append(f"{rel}: the encoder section's manifest is not listed (no checksum) in files")
        return None
    try:
        m = json.loads((root / rel).read_text())
        stream = (m.get("streaming") or {}).get("files") or {}
        names = [*m["files"].values(), *(f for pair in stream.values() for f in pair.values())]
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        problems.append(f"{rel}: not an encoder manifest ({type(e).__name__}: {e})")
        return None
    for name in names:
        if f"{folder}/{name}" not in listed:
            problems.append(f"{folder}/{name}: named by {rel} but not listed (no checksum) in files")
    return root / folder


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: dict
    llm: LlmFiles | None
    encoder: Path | None = None  # the exported encoder's folder (agent.localize.encoder.EncoderRuntime)


def read_bundle(root: str | os.PathLike) -> Bundle:
    """Verify a bundle folder (format, version, contract, every file's size and SHA-256, the
    tokenizer against the embedding table, the encoder's files all checksummed) and return its paths; raise BinauraError naming
    every problem otherwise. Nothing heavy is loaded here."""
    root = Path(root)
    m = read_manifest(root)
    problems: list[str] = []
    _check_contract(m, problems)
    verify_files(root, m, problems)
    listed = set(m.get("files") or {})
    llm = m.get("llm")
    if llm is not None:
        for rel in [*(llm.get("decoders") or {}).values(), llm.get("embeddings"), llm.get("tokenizer")]:
            if rel is not None and rel not in listed:
                problems.append(f"{rel}: named by the llm section but not listed (no checksum) in files")
    files = _check_llm(root, llm, problems) if isinstance(llm, dict) and not problems else None
    encoder = _check_encoder(root, m["encoder"], listed, problems) if "encoder" in m and not problems else None
    if problems:
        raise BinauraError(f"{root}: refusing the bundle ({len(problems)} problem(s)):\n" +
                           "\n".join(f"  - {p}" for p in problems))
    return Bundle(root, m, files, encoder)
