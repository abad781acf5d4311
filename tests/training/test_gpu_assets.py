"""Carrying the real-sounds kit and the training heads to a GPU machine (training/recipes/gpu_assets.py):
parts of a bounded size that join back bit for bit, the kit's train side only, never the
held-out human head, and a clear error for a missing or damaged part."""

import hashlib
import json

import numpy as np
import pytest

from agent.core.errors import BinauraError
from training.recipes.gpu_assets import MANIFEST, PART_FILE, pack, unpack
from training.synth.measured_heads import HEADS_ENV, MEASURED
from training.synth.realsounds.catalog import CATALOG_FILE, SUMMARY_FILE
from training.synth.realsounds.pool import REAL_SOUNDS_ENV


@pytest.fixture
def sources(tmp_path):
    kit, heads = tmp_path / "real-sounds", tmp_path / "heads"
    (kit / "audio/pkg").mkdir(parents=True)
    heads.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for k in range(6):  # incompressible bytes, so the tar spans several parts
        name = f"audio/pkg/{k:04d}.flac"
        (kit / name).write_bytes(rng.bytes(40_000))
        rows.append({"id": f"pkg/{k:04d}", "file": name, "kind": "sound", "label": "dog",
                     "split": "held_out" if k % 3 == 0 else "train"})
    (kit / CATALOG_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (kit / SUMMARY_FILE).write_text(json.dumps({"format": "binaura-real-sounds-v1", "files": 6}))
    for h in MEASURED.values():
        (heads / h.file_name).write_bytes(h.name.encode() * 100)
    return kit, heads, rows


def test_parts_join_back_to_the_train_side_and_the_training_heads(sources, tmp_path):
    kit, heads, rows = sources
    m = pack(tmp_path / ".gpu-assets", kit, heads, part_mb=0.05)
    parts = sorted((tmp_path / ".gpu-assets").glob(f"p*/{PART_FILE}"))
    assert len(parts) == len(m["parts"]) >= 4 and all(p.stat().st_size <= 50_000 for p in parts)
    assert (tmp_path / ".gpu-assets" / m["parts"][-1]["part"] / MANIFEST).is_file()
    assert m["real_sound_files"] == 4 and "ic-subject2.sofa" not in m["heads"]
    env = unpack(tmp_path / ".gpu-assets", tmp_path / "there")
    got_kit, got_heads = tmp_path / "there/real-sounds", tmp_path / "there/heads"
    assert env == {REAL_SOUNDS_ENV: str(got_kit), HEADS_ENV: str(got_heads)}
    carried = [json.loads(line) for line in (got_kit / CATALOG_FILE).read_text().splitlines()]
    assert [r["id"] for r in carried] == [r["id"] for r in rows if r["split"] == "train"]
    for r in rows:  # every train file arrives byte for byte; no held-out file arrives at all
        there = got_kit / r["file"]
        if r["split"] == "train":
            assert hashlib.sha256(there.read_bytes()).digest() == hashlib.sha256((kit / r["file"]).read_bytes()).digest()
        else:
            assert not there.exists()
    assert "train side only" in json.loads((got_kit / SUMMARY_FILE).read_text())["carried"]
    assert sorted(p.name for p in got_heads.iterdir()) == ["fabian.wav", "ic-subject1.sofa", "kemar-tub.wav"]


def test_a_missing_or_damaged_part_is_named(sources, tmp_path):
    kit, heads, _ = sources
    out = tmp_path / ".gpu-assets"
    pack(out, kit, heads, part_mb=0.05)
    first = out / "p1" / PART_FILE
    first.write_bytes(first.read_bytes()[:-10])
    with pytest.raises(BinauraError, match="p1/assets.tar.part: SHA-256 differs"):
        unpack(out, tmp_path / "there")
    first.unlink()
    with pytest.raises(BinauraError, match="p1/assets.tar.part is missing: carry all"):
        unpack(out, tmp_path / "there")
    with pytest.raises(BinauraError, match="expected one part holding assets.json"):
        unpack(tmp_path / "nothing", tmp_path / "there")


def test_pack_refuses_a_folder_it_did_not_make(sources, tmp_path):
    kit, heads, _ = sources
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BinauraError, match="refusing to overwrite: .*mine is not empty and was not written by binaura"):
        pack(tmp_path / "mine", kit, heads)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".mine")] == []  # no partial left


def test_a_part_size_below_one_byte_is_refused_and_unpack_prints_quoted_exports(sources, tmp_path, capsys):
    from training.recipes.gpu_assets import main

    kit, heads, _ = sources
    with pytest.raises(BinauraError, match="expected a part size of at least one byte"):
        pack(tmp_path / "a", kit, heads, part_mb=0)
    pack(tmp_path / "a", kit, heads, part_mb=0.05)
    to = tmp_path / "with space" / "assets"
    assert main(["unpack", "--parts", str(tmp_path / "a"), "--to", str(to)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"export {REAL_SOUNDS_ENV}='{to}/real-sounds'", f"export {HEADS_ENV}='{to}/heads'"]


def test_wheels_and_the_gguf_travel_split_and_come_back_whole(tmp_path):
    from training.recipes.gpu_assets import GGUF_ENV, WHEELS_ENV

    rng = np.random.default_rng(1)
    (tmp_path / "whl").mkdir()
    big = rng.bytes(120_000)  # larger than a part: split across several, joined back
    (tmp_path / "whl" / "bitsandbytes-0-py3-none-any.whl").write_bytes(big)
    (tmp_path / "whl" / "trl-0-py3-none-any.whl").write_bytes(b"small")
    (tmp_path / "model.gguf").write_bytes(rng.bytes(30_000))
    m = pack(tmp_path / "llm-parts", with_kit=False, wheels=tmp_path / "whl", gguf=tmp_path / "model.gguf",
             part_mb=0.05)
    assert len(m["parts"]) >= 4 and "heads" not in m and m["gguf"] == "model.gguf"
    env = unpack(tmp_path / "llm-parts", tmp_path / "there")
    assert set(env) == {WHEELS_ENV, GGUF_ENV}  # no kit, no heads: nothing names them
    there = tmp_path / "there"
    assert (there / "whl" / "bitsandbytes-0-py3-none-any.whl").read_bytes() == big
    assert env[GGUF_ENV] == str(there / "llm" / "model.gguf")
    with pytest.raises(BinauraError, match="nothing to pack"):
        pack(tmp_path / "empty", with_kit=False)


def test_unpack_needs_the_standard_library_alone_and_names_what_the_synthesizer_reads():
    import subprocess
    import sys

    import training.recipes.gpu_assets as g

    # the GPU machine unpacks before any wheel (soundfile, h5py) is installed
    code = "import sys, training.recipes.gpu_assets; print(sorted(m for m in ('numpy', 'soundfile', " \
           "'training.synth') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert (g.REAL_SOUNDS_ENV, g.HEADS_ENV) == (REAL_SOUNDS_ENV, HEADS_ENV)


def test_unpack_never_replaces_a_folder_it_did_not_make(sources, tmp_path):
    kit, heads, _ = sources
    pack(tmp_path / "parts", kit, heads, part_mb=0.05)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BinauraError, match="refusing to overwrite: .*mine is not empty"):
        unpack(tmp_path / "parts", tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    unpack(tmp_path / "parts", tmp_path / "there")
    unpack(tmp_path / "parts", tmp_path / "there")  # an earlier unpack is replaced whole
    assert sorted(p.name for p in (tmp_path / "there").iterdir()) == [".binaura-output.json", "heads", "real-sounds"]
