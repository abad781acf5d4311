"""Carry the real-sounds kit and the measured training heads to a GPU machine without internet.

A recipe whose scenes draw real recordings or measured heads (e.g. SYNTH_CONFIG=
training/recipes/train_mix.json, stages 17-19) needs both on the machine that synthesizes.
Such machines take at most 64 MiB per transfer, so `pack` writes one tar of:
- the kit's **train side only** (catalog rows, their FLAC files, and a summary that says
  so): a held-out recording cannot reach a training run there, by construction;
- the measured **training** heads' files (never the held-out head);
split into folders `OUT/p1 ... OUT/pN` of at most `part_mb` MB each (24: a device call carries
64 MiB with the working tree's ~38 MB), plus `OUT/pN/assets.json`
(what it holds, each part's SHA-256). `unpack` joins the parts, checks them and extracts into a
folder that `env` then names (BINAURA_REAL_SOUNDS and BINAURA_HEADS) for the synthesizer.

    python -m training.recipes.gpu_assets pack --out .gpu-assets        # here (make gpu-kit)
    eval "$(python3 -m training.recipes.gpu_assets unpack --parts .gpu-assets --to /tmp/assets)"
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shlex
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from agent.core.errors import BinauraError
from training.synth.heads import allowed_in_training
from training.synth.measured_heads import HEADS_ENV, MEASURED, heads_cache_dir
from training.synth.realsounds.catalog import CATALOG_FILE, SUMMARY_FILE
from training.synth.realsounds.pool import REAL_SOUNDS_ENV, default_root
from training.synth.realsounds.split import TRAIN

FORMAT = "binaura-gpu-assets-v1"
MANIFEST = "assets.json"
PART_FILE = "assets.tar.part"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write_tar(path: Path, kit: Path, heads: Path) -> dict:
    rows = [json.loads(line) for line in (kit / CATALOG_FILE).read_text().splitlines() if line]
    train = [r for r in rows if r["split"] == TRAIN]
    summary = json.loads((kit / SUMMARY_FILE).read_text())
    summary["carried"] = f"train side only ({len(train)} of {len(rows)} files): training/recipes/gpu_assets.py"
    head_files = sorted({MEASURED[h].file_name for h in MEASURED if allowed_in_training(h)})
    with tarfile.open(path, "w") as tar:
        _add_bytes(tar, f"real-sounds/{CATALOG_FILE}", "".join(json.dumps(r) + "\n" for r in train).encode())
        _add_bytes(tar, f"real-sounds/{SUMMARY_FILE}", json.dumps(summary, indent=2).encode())
        for r in train:
            tar.add(kit / r["file"], f"real-sounds/{r['file']}")
        for name in head_files:
            if not (heads / name).is_file():
                raise BinauraError(f"{heads / name}: a training head is not fetched; run `make heads` first")
            tar.add(heads / name, f"heads/{name}")
    return {"real_sound_files": len(train), "heads": head_files}


def pack(out: str | os.PathLike, kit: str | os.PathLike | None = None, heads: str | os.PathLike | None = None,
         part_mb: float = 24.0) -> dict:
    """Write OUT/p1..pN (replacing what is there, atomically); returns the manifest."""
    kit = Path(kit) if kit else default_root()
    heads = Path(heads) if heads else heads_cache_dir()
    if not (kit / CATALOG_FILE).is_file():
        raise BinauraError(f"no real-sounds kit at {kit}; build it with `make sounds`")
    if not part_mb * 1e6 >= 1:
        raise BinauraError(f"--part-mb {part_mb}: expected a part size of at least one byte (24 MB fits a device call)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        held = _write_tar(tmp / "all.tar", kit, heads)
        size, step = (tmp / "all.tar").stat().st_size, int(part_mb * 1e6)
        parts = []
        with open(tmp / "all.tar", "rb") as f:
            for k in range(1, max(1, -(-size // step)) + 1):
                data = f.read(step)
                (tmp / f"p{k}").mkdir()
                (tmp / f"p{k}" / PART_FILE).write_bytes(data)
                parts.append({"part": f"p{k}", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        (tmp / "all.tar").unlink()
        manifest = {"format": FORMAT, "bytes": size, "parts": parts, **held}
        (tmp / parts[-1]["part"] / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            if not any(out.glob(f"p*/{PART_FILE}")) and any(out.iterdir()):
                raise BinauraError(f"{out} exists and holds no GPU asset parts; refusing to replace it")
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _extract(tar: tarfile.TarFile, to: Path) -> None:
    """Extract plain files and folders inside `to` only (tarfile's "data" filter where this Python has it)."""
    try:
        tar.extractall(to, filter="data")
        return
    except TypeError:  # Python before 3.10.12 / 3.11.4: no extraction filters
        pass
    root = to.resolve()
    for m in tar.getmembers():
        if not (m.isfile() or m.isdir()) or not (to / m.name).resolve().is_relative_to(root):
            raise BinauraError(f"{m.name}: not a plain file inside the assets folder; refusing to extract")
    tar.extractall(to)


def unpack(parts: str | os.PathLike, to: str | os.PathLike) -> dict[str, str]:
    """Join and check the parts under `parts`, extract into `to`; returns the environment to set."""
    parts, to = Path(parts), Path(to)
    found = sorted(parts.glob(f"p*/{MANIFEST}"))
    if len(found) != 1:
        raise BinauraError(f"{parts}: expected one part holding {MANIFEST} (the last), found {len(found)}; "
                           f"carry every part of `make gpu-kit`'s .gpu-assets")
    manifest = json.loads(found[0].read_text())
    if manifest.get("format") != FORMAT:
        raise BinauraError(f"{found[0]}: expected {FORMAT}, found {manifest.get('format')!r}")
    if to.exists():
        shutil.rmtree(to)  # a fresh folder: nothing of an earlier unpack mixes in
    to.mkdir(parents=True)
    joined = to / "assets.tar"
    with open(joined, "wb") as f:
        for p in manifest["parts"]:
            path = parts / p["part"] / PART_FILE
            if not path.is_file():
                raise BinauraError(f"{path} is missing: carry all {len(manifest['parts'])} parts")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != p["sha256"]:
                raise BinauraError(f"{path}: SHA-256 differs from the manifest's (a truncated transfer?)")
            f.write(data)
    try:
        with tarfile.open(joined) as tar:
            _extract(tar, to)
    finally:
        joined.unlink()
    return {REAL_SOUNDS_ENV: str(to / "real-sounds"), HEADS_ENV: str(to / "heads")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.recipes.gpu_assets", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", required=True)
    p.add_argument("--part-mb", type=float, default=24.0)
    u = sub.add_parser("unpack", help="prints `export NAME=VALUE` lines for eval")
    u.add_argument("--parts", required=True)
    u.add_argument("--to", required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            m = pack(args.out, part_mb=args.part_mb)
            print(f"{m['real_sound_files']} train-side recordings and heads {', '.join(m['heads'])} -> {args.out}: "
                  f"{len(m['parts'])} parts, {m['bytes'] / 1e6:.0f} MB; carry each .gpu-assets/pK", file=sys.stderr)
        else:
            for k, v in unpack(args.parts, args.to).items():
                print(f"export {k}={shlex.quote(v)}")
    except BinauraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
