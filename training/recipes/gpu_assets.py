"""Carry what a GPU machine without internet lacks, in parts one device call can take.

Such machines take at most 64 MiB per call, the working tree's ~38 MB included, so `pack`
writes one tar, split into folders `OUT/p1 ... OUT/pN` of at most `part_mb` MB each (24 by
default), plus `OUT/pN/assets.json` (what it holds, each part's SHA-256). It may hold:
- the real-sounds kit's **train side only** (catalog rows, their FLAC files, a summary that
  says so) and the measured **training** heads (never a held-out head), for a recipe whose
  scenes draw them (SYNTH_CONFIG=training/recipes/train_mix.json, stages 17-19): a held-out
  recording cannot reach a training run there, by construction (`--no-kit` leaves them out);
- Python wheels (`--wheels DIR`: files too large for one call, bitsandbytes' 43 MB, travel
  split like the rest);
- the base LLM's GGUF (`--gguf FILE`), for the language model's recipe.
`unpack` joins the parts, checks them, extracts into a fresh folder and prints the
environment that names what it holds (BINAURA_REAL_SOUNDS, BINAURA_HEADS,
BINAURA_GPU_WHEELS, BINAURA_BASE_GGUF); gpu_encoder.sh and gpu_lalm.sh do this and install
the wheels themselves.

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
import sys
import tarfile
from pathlib import Path

from agent.core.errors import BinauraError
from agent.core.outdir import OutputKind, output_folder

# `unpack` runs on the GPU machine before any wheel is installed (soundfile may be missing
# there): it needs the standard library alone, so the synthesizer is imported only to pack.
FORMAT = "binaura-gpu-assets-v1"
MANIFEST, PART_FILE = "assets.json", "assets.tar.part"
#: The variables the synthesizer reads (training.synth's REAL_SOUNDS_ENV and HEADS_ENV; a test
#: checks they agree), and the ones the GPU recipes read.
REAL_SOUNDS_ENV, HEADS_ENV = "BINAURA_REAL_SOUNDS", "BINAURA_HEADS"
WHEELS_ENV, GGUF_ENV = "BINAURA_GPU_WHEELS", "BINAURA_BASE_GGUF"
PARTS_KIND, UNPACKED_KIND = OutputKind("gpu-asset-parts"), OutputKind("gpu-assets")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_kit(tar: tarfile.TarFile, kit: Path, heads: Path) -> dict:
    from training.synth.heads import allowed_in_training  # noqa: PLC0415
    from training.synth.measured_heads import MEASURED  # noqa: PLC0415
    from training.synth.realsounds.catalog import CATALOG_FILE, SUMMARY_FILE  # noqa: PLC0415
    from training.synth.realsounds.pool import RealSounds  # noqa: PLC0415
    from training.synth.realsounds.split import TRAIN  # noqa: PLC0415

    sounds = RealSounds(kit)  # a clear error for a folder that is not a kit
    rows = list(sounds.entries.values())
    train = [r for r in rows if r["split"] == TRAIN]
    summary = dict(sounds.meta)
    summary["carried"] = f"train side only ({len(train)} of {len(rows)} files): training/recipes/gpu_assets.py"
    head_files = sorted({MEASURED[h].file_name for h in MEASURED if allowed_in_training(h)})
    _add_bytes(tar, f"real-sounds/{CATALOG_FILE}", "".join(json.dumps(r) + "\n" for r in train).encode())
    _add_bytes(tar, f"real-sounds/{SUMMARY_FILE}", json.dumps(summary, indent=2).encode())
    for r in train:
        tar.add(kit / r["file"], f"real-sounds/{r['file']}")
    for name in head_files:
        if not (heads / name).is_file():
            raise BinauraError(f"{heads / name}: a training head is not fetched; run `make heads` first")
        tar.add(heads / name, f"heads/{name}")
    return {"real_sound_files": len(train), "heads": head_files}


def _write_tar(path: Path, kit: Path | None, heads: Path, wheels: Path | None, gguf: Path | None) -> dict:
    held: dict = {}
    with tarfile.open(path, "w") as tar:
        if kit is not None:
            held.update(_add_kit(tar, kit, heads))
        if wheels is not None:
            names = sorted(p.name for p in wheels.glob("*.whl"))
            if not names:
                raise BinauraError(f"--wheels {wheels}: expected .whl files there, found none")
            for name in names:
                tar.add(wheels / name, f"whl/{name}")
            held["wheels"] = names
        if gguf is not None:
            if not gguf.is_file():
                raise BinauraError(f"--gguf {gguf}: no such file")
            tar.add(gguf, f"llm/{gguf.name}")
            held["gguf"] = gguf.name
    if not held:
        raise BinauraError("nothing to pack: leave out --no-kit, or name --wheels or --gguf")
    return held


def pack(out: str | os.PathLike, kit: str | os.PathLike | None = None, heads: str | os.PathLike | None = None,
         part_mb: float = 24.0, *, with_kit: bool = True, wheels: str | os.PathLike | None = None,
         gguf: str | os.PathLike | None = None) -> dict:
    """Write OUT/p1..pN (replacing what is there, atomically); returns the manifest."""
    from training.synth.measured_heads import heads_cache_dir  # noqa: PLC0415
    from training.synth.realsounds.pool import default_root  # noqa: PLC0415

    kit_dir = (Path(kit) if kit else default_root()) if with_kit else None
    heads = Path(heads) if heads else heads_cache_dir()
    if not part_mb * 1e6 >= 1:
        raise BinauraError(f"--part-mb {part_mb}: expected a part size of at least one byte (24 MB fits a device call)")
    with output_folder(out, PARTS_KIND) as tmp:
        held = _write_tar(tmp / "all.tar", kit_dir, heads, Path(wheels) if wheels else None,
                          Path(gguf) if gguf else None)
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
    with output_folder(to, UNPACKED_KIND) as tmp:  # replaces only an earlier unpack
        joined = tmp / "assets.tar"
        with open(joined, "wb") as f:
            for p in manifest["parts"]:
                path = parts / p["part"] / PART_FILE
                if not path.is_file():
                    raise BinauraError(f"{path} is missing: carry all {len(manifest['parts'])} parts")
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != p["sha256"]:
                    raise BinauraError(f"{path}: SHA-256 differs from the manifest's (a truncated transfer?)")
                f.write(data)
        with tarfile.open(joined) as tar:
            _extract(tar, tmp)
        joined.unlink()
    env = {REAL_SOUNDS_ENV: to / "real-sounds", HEADS_ENV: to / "heads", WHEELS_ENV: to / "whl"}
    out = {k: str(v) for k, v in env.items() if v.is_dir()}
    if manifest.get("gguf"):
        out[GGUF_ENV] = str(to / "llm" / manifest["gguf"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.recipes.gpu_assets", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", required=True)
    p.add_argument("--part-mb", type=float, default=24.0)
    p.add_argument("--no-kit", action="store_true", help="leave the real-sounds kit and the heads out")
    p.add_argument("--wheels", help="a folder of .whl files to carry (installed by the GPU recipes)")
    p.add_argument("--gguf", help="the base LLM's GGUF to carry (BINAURA_BASE_GGUF there)")
    u = sub.add_parser("unpack", help="prints `export NAME=VALUE` lines for eval")
    u.add_argument("--parts", required=True)
    u.add_argument("--to", required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            m = pack(args.out, part_mb=args.part_mb, with_kit=not args.no_kit, wheels=args.wheels, gguf=args.gguf)
            what = [f"{m['real_sound_files']} train-side recordings, heads {', '.join(m['heads'])}"] if "heads" in m else []
            what += [f"{len(m['wheels'])} wheels"] if "wheels" in m else []
            what += [m["gguf"]] if "gguf" in m else []
            print(f"{'; '.join(what)} -> {args.out}: {len(m['parts'])} parts, {m['bytes'] / 1e6:.0f} MB; "
                  f"carry each {args.out}/pK in its own device call", file=sys.stderr)
        else:
            for k, v in unpack(args.parts, args.to).items():
                print(f"export {k}={shlex.quote(v)}")
    except BinauraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
