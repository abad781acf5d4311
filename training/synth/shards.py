"""A dataset rendered in shards: each worker renders a contiguous range of scene indices into its
own folder (`binaura synth --shard K/N`), and `merge_shards` joins the folders into the one a
single `binaura synth` writes, byte for byte (docs/cluster.md; tests/training/test_shards.py).

A scene (its wav and its scenes.jsonl row) and its questions are functions of (config, seed,
index) alone. Three things name the whole build instead: the qa.jsonl ids, which are row numbers
(training/qa/generate.qa_id), and synth_config.json's `start` and `scenes`. The merge copies
everything else as it is and rewrites only those, after checking that the shards come from one
(config, seed), tile 0..N-1 without gap or overlap, and are complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from agent.core.dataset import AUDIO_DIR, QA_FILE, SCENES_FILE, resolve_audio_path
from agent.core.errors import BinauraError
from agent.core.outdir import OutputKind, check_replaceable
from training.qa.generate import qa_id
from training.synth.build import SYNTH_CONFIG_FILE, write_synth_config

#: What the merge may replace: an empty folder or a dataset (its caches go with it).
DATASET_KIND = OutputKind("dataset", manifest=SCENES_FILE,
                          names=(QA_FILE, AUDIO_DIR, SYNTH_CONFIG_FILE, "features-*", "encoder-outputs*"))
_JSONL_SEPARATORS = (", ", ": ")  # as agent.core.dataset.write_jsonl writes rows


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" -> (K, N): shard K (0-based, as SLURM_ARRAY_TASK_ID with --array=0-(N-1)) of N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise BinauraError(f"--shard {text!r}: expected K/N, shard K (0-based) of N, e.g. 3/16") from None
    if n < 1 or not 0 <= k < n:
        raise BinauraError(f"--shard {text}: expected K/N with N >= 1 and 0 <= K <= N-1 "
                           f"(0-based, as SLURM_ARRAY_TASK_ID with --array=0-{max(n - 1, 0)})")
    return k, n


def shard_range(total: int, shard: int, n_shards: int) -> tuple[int, int]:
    """[first, end) scene indices of shard `shard` of `n_shards` contiguous shards of 0..total-1;
    shard sizes differ by at most one scene."""
    if total < 1:
        raise BinauraError(f"--scenes must be >= 1, got {total}")
    if n_shards > total:
        raise BinauraError(f"--shard {shard}/{n_shards} of --scenes {total}: every shard needs a scene; "
                           f"use at most {total} shards")
    return total * shard // n_shards, total * (shard + 1) // n_shards


@dataclass(frozen=True)
class Shard:
    """One shard folder: scenes start..end-1 of (config, seed); has_qa: it holds qa.jsonl."""

    path: Path
    seed: int
    start: int
    scenes: int
    config: dict
    has_qa: bool

    @property
    def end(self) -> int:
        return self.start + self.scenes

    def __str__(self) -> str:
        return f"{self.path} (scenes {self.start}..{self.end - 1})"


def read_shard(path: str | os.PathLike) -> Shard:
    """The shard's record, after checking it is a finished `binaura synth` folder."""
    path = Path(path)
    if not path.is_dir():
        raise BinauraError(f"shard {path}: expected a folder written by `binaura synth`, found none")
    if not (path / SCENES_FILE).is_file():
        raise BinauraError(f"shard {path}: no {SCENES_FILE}, so its `binaura synth` did not finish; "
                           f"run it again")
    try:
        rec = json.loads((path / SYNTH_CONFIG_FILE).read_text())
        shard = Shard(path, rec["seed"], rec["start"], rec["scenes"], rec["config"], (path / QA_FILE).is_file())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BinauraError(f"shard {path}: cannot read {SYNTH_CONFIG_FILE} (expected the seed, start, scenes "
                           f"and config `binaura synth` writes): {e}") from e
    if not all(isinstance(v, int) for v in (shard.seed, shard.start, shard.scenes)) or shard.scenes < 1:
        raise BinauraError(f"shard {path}: {SYNTH_CONFIG_FILE} needs integer seed and start and scenes >= 1")
    return shard


def _first_difference(a: dict, b: dict) -> str:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            return f"{k}: {a.get(k, '(absent)')!r} vs {b.get(k, '(absent)')!r}"
    return ""


def check_shards(shards: list[Shard], expected_scenes: int | None = None) -> list[Shard]:
    """The shards in index order, after checking they are of one build and tile 0..N-1."""
    if not shards:
        raise BinauraError("synth-merge: expected one or more shard folders")
    first = shards[0]
    for s in shards[1:]:
        if s.seed != first.seed:
            raise BinauraError(f"shards of different seeds: {first.path} has seed {first.seed}, {s.path} seed "
                               f"{s.seed}; expected one --seed for every shard")
        if s.config != first.config:
            raise BinauraError(f"shards of different synthesis configs: {first.path} and {s.path} differ in "
                               f"{_first_difference(first.config, s.config)}; expected one --preset/--config")
        if s.has_qa != first.has_qa:
            with_qa, without = (first, s) if first.has_qa else (s, first)
            raise BinauraError(f"{with_qa.path} holds {QA_FILE} but {without.path} does not; expected every "
                               f"shard built with --no-qa or every one without")
    ordered = sorted(shards, key=lambda s: (s.start, s.end))
    if ordered[0].start != 0:
        raise BinauraError(f"shards must cover scenes 0..N-1: the first, {ordered[0]}, starts at "
                           f"{ordered[0].start}; scenes 0..{ordered[0].start - 1} are missing")
    for a, b in zip(ordered, ordered[1:]):
        if b.start > a.end:
            raise BinauraError(f"gap between shards: scenes {a.end}..{b.start - 1} are missing between {a} and {b}")
        if b.start < a.end:
            raise BinauraError(f"overlapping shards: {a} and {b} both hold scenes {b.start}.."
                               f"{min(a.end, b.end) - 1}; expected each scene in one shard")
    total = ordered[-1].end
    if expected_scenes is not None and total != expected_scenes:
        raise BinauraError(f"--scenes {expected_scenes}: the shards cover scenes 0..{total - 1} ({total}); "
                           f"expected 0..{expected_scenes - 1}"
                           + (f", scenes {total}..{expected_scenes - 1} are missing" if total < expected_scenes
                              else ""))
    return ordered


def _lines(path: Path) -> list[str]:
    """The file's lines, each with its newline (a last line without one is refused)."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        raise BinauraError(f"{path}: its last line has no newline, so it was not written whole by `binaura synth`")
    return text.splitlines(keepends=True)


def _row(path: Path, lineno: int, line: str, keys: tuple[str, ...]) -> dict:
    """The JSON object on line `lineno` of path, holding `keys`."""
    try:
        row = json.loads(line)
    except ValueError as e:
        raise BinauraError(f"{path}:{lineno}: invalid JSON ({e})") from None
    if not isinstance(row, dict) or any(k not in row for k in keys):
        raise BinauraError(f"{path}:{lineno}: expected a JSON object with {', '.join(keys)}")
    return row


def _copy_scenes(shard: Shard, out: Path, scenes_file, bar) -> set[str]:
    """Append the shard's scenes.jsonl rows (as they are) to scenes_file and link or copy their wavs
    into out; returns the shard's scene ids."""
    ids: set[str] = set()
    lines = _lines(shard.path / SCENES_FILE)
    if len(lines) != shard.scenes:
        raise BinauraError(f"shard {shard}: {SCENES_FILE} has {len(lines)} rows; {SYNTH_CONFIG_FILE} says "
                           f"{shard.scenes}")
    for offset, line in enumerate(lines):
        row = _row(shard.path / SCENES_FILE, offset + 1, line, ("id", "audio", "seed", "index"))
        if (row["seed"], row["index"]) != (shard.seed, shard.start + offset):
            raise BinauraError(f"{shard.path / SCENES_FILE}:{offset + 1}: expected scene {shard.start + offset} "
                               f"of seed {shard.seed}, found index {row['index']} of seed {row['seed']}")
        src = resolve_audio_path(shard.path, row["audio"], where=f"scene {row['id']}")
        if not src.is_file():
            raise BinauraError(f"shard {shard}: {src} is missing (scene {row['id']})")
        dst = out / row["audio"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)  # the same bytes without a copy, where both are on one filesystem
        except OSError:
            shutil.copyfile(src, dst)
        scenes_file.write(line)
        ids.add(row["id"])
        bar.update()
    return ids


def _copy_qa(shard: Shard, ids: set[str], row: int, qa_file) -> int:
    """Append the shard's qa.jsonl rows to qa_file, renumbered from `row`; returns the next row."""
    for lineno, line in enumerate(_lines(shard.path / QA_FILE), start=1):
        item = _row(shard.path / QA_FILE, lineno, line, ("id", "scene_id"))
        if item["id"] != qa_id(lineno - 1) or item["scene_id"] not in ids:
            raise BinauraError(f"{shard.path / QA_FILE}:{lineno}: expected item {qa_id(lineno - 1)} about a scene "
                               f"of this shard, found {item['id']!r} about {item['scene_id']!r}")
        item["id"] = qa_id(row)
        qa_file.write(json.dumps(item, separators=_JSONL_SEPARATORS) + "\n")
        row += 1
    return row


def _swap_in(tmp: Path, out: Path) -> None:
    """Put the finished folder tmp at out, replacing what check_replaceable allowed there."""
    if not os.path.lexists(out):
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(tmp, out)
    shutil.rmtree(old)


def merge_shards(out: str | os.PathLike, paths: list[str | os.PathLike], expected_scenes: int | None = None,
                 progress: bool = True) -> int:
    """Join shard folders into `out`, the folder one `binaura synth` of all their scenes writes
    (wavs hard-linked where out shares the shards' filesystem, else copied). Returns the scene count."""
    out = Path(out)
    shards = check_shards([read_shard(p) for p in paths], expected_scenes)
    for s in shards:
        if out.resolve() == s.path.resolve() or s.path.resolve().is_relative_to(out.resolve()):
            raise BinauraError(f"--out {out} holds shard {s.path}; merge into a new folder beside the shards")
    check_replaceable(out, DATASET_KIND)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    total = shards[-1].end
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # as a folder `binaura synth` makes, not mkdtemp's private 0700
        (tmp / AUDIO_DIR).mkdir()
        row = 0
        with contextlib.ExitStack() as stack:
            scenes_file = stack.enter_context(open(tmp / SCENES_FILE, "w", encoding="utf-8"))
            qa_file = stack.enter_context(open(tmp / QA_FILE, "w", encoding="utf-8")) if shards[0].has_qa else None
            bar = stack.enter_context(tqdm(total=total, desc="merge", unit="scene", disable=not progress))
            for s in shards:
                ids = _copy_scenes(s, tmp, scenes_file, bar)
                if qa_file is not None:
                    row = _copy_qa(s, ids, row, qa_file)
        write_synth_config(tmp, shards[0].seed, 0, total, shards[0].config)
        check_replaceable(out, DATASET_KIND)  # the folder may have changed while we worked
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return total
