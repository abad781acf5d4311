"""Sharded synthesis: two worker processes' shards, merged, equal the one-process build bit for bit;
the merge refuses shards that do not tile one build, and folders it must not replace."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.cli import main
from training.synth.shards import shard_range

ROOT = Path(__file__).resolve().parents[2]
TINY = {"duration_s": 1.0, "event_duration_s": [0.4, 1.0], "rt60_s": [0.1, 0.3], "sample_rate_hz": 16_000}
SCENES, SEED = 4, 5


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under folder (hidden ones too), keyed by its path inside folder."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def synth_args(out: Path, cfg: Path, *extra: str, seed: int = SEED) -> list[str]:
    return ["synth", "--out", str(out), "--scenes", str(SCENES), "--seed", str(seed), "--config", str(cfg),
            "--workers", "1", "--quiet", *extra]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two shards rendered at once by two worker processes, and the one-process build."""
    root = tmp_path_factory.mktemp("shards")
    cfg = root / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "export.cli",
                                 *synth_args(root / f"shard{k}", cfg, "--shard", f"{k}/2")],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for k in range(2)]
    assert main(synth_args(root / "whole", cfg)) == 0
    for k, w in enumerate(workers):
        out, _ = w.communicate(timeout=1800)  # wall time: generous for a loaded machine
        assert w.returncode == 0, out
        assert f"shard {k}/2: scenes {2 * k}..{2 * k + 1} of {SCENES}" in out
    return root


def test_shard_ranges_tile_the_scenes():
    for total, n in ((4, 2), (10, 3), (7, 7), (100_001, 64)):
        ranges = [shard_range(total, k, n) for k in range(n)]
        assert ranges[0][0] == 0 and ranges[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert max(e - s for s, e in ranges) - min(e - s for s, e in ranges) <= 1


def test_merged_shards_equal_the_one_process_build(built, capsys):
    out = built / "merged"
    assert main(["synth-merge", "--out", str(out), "--scenes", str(SCENES), "--quiet",
                 str(built / "shard1"), str(built / "shard0")]) == 0  # any order
    assert "scenes 0..3" in capsys.readouterr().out
    whole = digests(built / "whole")
    assert set(whole) == {"scenes.jsonl", "qa.jsonl", "synth_config.json"} | {f"audio/s{i:06d}.wav"
                                                                              for i in range(SCENES)}
    assert digests(out) == whole
    assert digests(built / "shard1") != digests(built / "whole")  # the shards differ: ids and record
    assert json.loads((built / "shard1" / "qa.jsonl").read_text().splitlines()[0])["id"] == "q0000000"
    assert oct((out).stat().st_mode & 0o777) == oct((built / "whole").stat().st_mode & 0o777)
    # a merge replaces a dataset it wrote before, whole
    assert main(["synth-merge", "--out", str(out), "--quiet", str(built / "shard0"), str(built / "shard1")]) == 0
    assert digests(out) == whole
    assert not [p for p in built.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def refusal(args: list, capsys) -> str:
    assert main(["synth-merge", "--quiet", *map(str, args)]) == 2
    return capsys.readouterr().err


def test_merge_refuses_gaps_overlaps_and_foreign_shards(built, tmp_path, capsys):
    out = tmp_path / "m"
    err = refusal(["--out", out, built / "shard1"], capsys)
    assert "scenes 0..1 are missing" in err
    err = refusal(["--out", out, "--scenes", 6, built / "shard0", built / "shard1"], capsys)
    assert "expected 0..5, scenes 4..5 are missing" in err
    err = refusal(["--out", out, built / "whole", built / "shard1"], capsys)
    assert "overlapping shards" in err and "both hold scenes 2..3" in err
    # a gap: scenes 0..1 and 3..3
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TINY))
    assert main(["synth", "--out", str(tmp_path / "late"), "--scenes", "1", "--start", "3", "--seed", str(SEED),
                 "--config", str(cfg), "--workers", "1", "--quiet"]) == 0
    err = refusal(["--out", out, built / "shard0", tmp_path / "late"], capsys)
    assert "gap between shards: scenes 2..2 are missing" in err
    # the second half of another seed
    assert main(synth_args(tmp_path / "seed6", cfg, "--shard", "1/2", seed=6)) == 0
    err = refusal(["--out", out, built / "shard0", tmp_path / "seed6"], capsys)
    assert "different seeds" in err and "expected one --seed" in err
    # the same indices of another config
    other = tmp_path / "other"
    shutil.copytree(built / "shard1", other)
    rec = json.loads((other / "synth_config.json").read_text())
    rec["config"]["duration_s"] = 2.0
    (other / "synth_config.json").write_text(json.dumps(rec))
    err = refusal(["--out", out, built / "shard0", other], capsys)
    assert "different synthesis configs" in err and "duration_s: 1.0 vs 2.0" in err
    # an unfinished shard
    (other / "scenes.jsonl").unlink()
    assert "did not finish" in refusal(["--out", out, built / "shard0", other], capsys)
    assert not out.exists()


def test_merge_refuses_folders_it_must_not_replace(built, tmp_path, capsys):
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "todo.txt").write_text("mine")
    err = refusal(["--out", keep, built / "shard0", built / "shard1"], capsys)
    assert "refusing to overwrite" in err and "todo.txt" in err
    assert (keep / "todo.txt").read_text() == "mine"
    err = refusal(["--out", built / "shard0", built / "shard0", built / "shard1"], capsys)
    assert "holds shard" in err


def test_shard_arguments_are_checked(tmp_path, capsys):
    base = ["synth", "--out", str(tmp_path / "s"), "--scenes", "4", "--quiet"]
    assert main([*base, "--shard", "2/2"]) == 2
    assert "0 <= K <= N-1" in capsys.readouterr().err
    assert main([*base, "--shard", "half"]) == 2
    assert "expected K/N" in capsys.readouterr().err
    assert main([*base, "--shard", "0/5"]) == 2
    assert "use at most 4 shards" in capsys.readouterr().err
    assert main([*base, "--shard", "0/2", "--start", "0"]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
