"""Output folders: written whole or not at all, and never over a folder binaura did not make."""

import json

import pytest

from agent.core.errors import BinauraError
from agent.core.outdir import MARKER, OutputKind, _exchange, output_folder

KIND = OutputKind("thing", manifest="thing.json", names=("part*.bin",))


def _write(tmp, text="new"):
    (tmp / "thing.json").write_text(text)
    (tmp / "part1.bin").write_text(text)


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_a_new_folder_is_written_and_marked(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, KIND) as tmp:
        assert tmp.parent == tmp_path and tmp != out
        _write(tmp)
    assert (out / "thing.json").read_text() == "new"
    assert json.loads((out / MARKER).read_text())["kind"] == "thing"
    assert _siblings(out) == []  # no temp folder left beside it


def test_a_foreign_folder_is_refused_before_any_work_and_left_intact(tmp_path):
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    worked = []
    with pytest.raises(BinauraError, match=r"not empty and was not written by binaura.*notes\.txt"):
        with output_folder(out, KIND) as tmp:
            worked.append(tmp)
    assert worked == [] and (out / "notes.txt").read_text() == "mine"
    # an older output of this kind with a foreign file in it is not ours either
    _write(out, "old")
    with pytest.raises(BinauraError, match="notes.txt"):
        with output_folder(out, KIND):
            pass
    assert (out / "notes.txt").read_text() == "mine" and _siblings(out) == []


def test_our_own_outputs_and_empty_folders_are_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()  # empty
    with output_folder(out, KIND) as tmp:
        _write(tmp, "one")
    with output_folder(out, KIND) as tmp:  # marked by the first write
        _write(tmp, "two")
    assert (out / "thing.json").read_text() == "two"
    legacy = tmp_path / "legacy"  # written before markers: recognised by its own files
    legacy.mkdir()
    _write(legacy, "old")
    with output_folder(legacy, KIND) as tmp:
        _write(tmp, "three")
    assert (legacy / "part1.bin").read_text() == "three"
    other = OutputKind("other")
    with pytest.raises(BinauraError, match="holds a binaura 'thing' output, not 'other'"):
        with output_folder(out, other):
            pass
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(BinauraError, match="not a folder"):
        with output_folder(f, KIND):
            pass


def test_an_error_or_interrupt_leaves_the_previous_output_and_no_temp(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, KIND) as tmp:
        _write(tmp, "good")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with output_folder(out, KIND) as tmp:
                _write(tmp, "half")
                raise exc
        assert (out / "thing.json").read_text() == "good" and _siblings(out) == []


def test_a_folder_that_turns_foreign_while_working_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(BinauraError, match="user.txt"):
        with output_folder(out, KIND) as tmp:
            _write(tmp)
            out.mkdir()
            (out / "user.txt").write_text("arrived meanwhile")
    assert (out / "user.txt").exists() and _siblings(out) == []


def test_the_swap_is_one_atomic_exchange_here(tmp_path):
    """On Linux both names exist at every instant: renameat2(RENAME_EXCHANGE) swaps them."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    assert _exchange(a, b) is True
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
