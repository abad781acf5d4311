"""Answering through the edge bundle (issue 23) on a tiny random program-aided model: the bundle
built by `binaura export bundle` (LoRA merged, fp32 decoder, the shipped encoder copied in)
writes the same programs token for token as the torch model, answers with torch blocked, and
the CLI refuses a corrupted bundle with one message."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from agent.answer.bundle import MANIFEST, read_bundle
from agent.answer.bundle_answerer import BundleAnswerer, BundleProgramWriter
from agent.answer.programs import NOT_UNDERSTOOD
from agent.core.errors import BinauraError
from agent.core.predictor import Clip
from agent.core.scene import QAItem, SourceLabel
from agent.qa.programs import parse_program, run_program
from export.cli import main
from tests.torchless import run_without_torch

QUESTIONS = ("Where is the dog?", "Is the siren behind me on the left?", "How many sounds do you hear?",
             "If I turn around, where will the bird be?")
DOG = SourceLabel("dog", 150.0, 0.0, 2.0, 0.2, 2.0)  # back-left, 2 m


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(language-model folder, bundle folder): a tiny random Llama with a program-aided LoRA
    (random, non-zero: the merge must matter), exported by the CLI as fp32 with a float32 table."""
    from training.models.lalm import LalmConfig, SpatialLALM, save_lalm  # noqa: PLC0415
    from training.models.llm import load_base_llm, save_tiny_llm  # noqa: PLC0415

    root = tmp_path_factory.mktemp("bundle-answer")
    hf = save_tiny_llm(root / "hf", seed=3)
    llm, tok = load_base_llm(hf)
    model = SpatialLALM(llm, tok, LalmConfig(base=str(hf), audio_tokens=False, output="program", lora_r=4))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(1)
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2)
    save_lalm(model, root / "lalm", stage="parse")
    rc = main(["export", "bundle", "--out", str(root / "bundle"), "--model", str(root / "lalm"),
               "--precision", "fp32", "--embeddings", "float32"])
    assert rc == 0
    return root / "lalm", root / "bundle"


def test_the_bundle_holds_the_encoder_and_what_built_it(tiny):
    _, bundle = tiny
    b = read_bundle(bundle)
    m = b.manifest
    assert b.encoder == bundle / "encoder" and m["encoder"]["precisions"] == ["fp32"]
    assert {"encoder/encoder.json", "encoder/encoder.onnx", "encoder/encoder.front.onnx",
            "encoder/encoder.back.onnx", "decoder_fp32.onnx"} <= set(m["files"])
    assert m["llm"]["source"]["output"] == "program" and m["llm"]["source"]["lalm_sha256"]
    assert m["tools"]["torch"] and m["tools"]["onnxruntime"] and m["tools"]["binaura"]


def test_bundle_programs_equal_the_torch_models_token_for_token(tiny):
    """The same prompt ids, then the same greedy tokens (fp32 ONNX of the merged LoRA vs torch
    with the LoRA unmerged), then the same program text through both answerers."""
    from training.eval.program_answerer import ProgramAnswerer  # noqa: PLC0415

    lalm, bundle = tiny
    torch_answerer = ProgramAnswerer(lalm, hear=None, max_new_tokens=32)
    model = torch_answerer.model
    writer = BundleProgramWriter(bundle, "fp32")

    def torch_tokens(q):
        with torch.no_grad():
            out = model.llm.generate(**model.greedy_kwargs([model.encode(q, None)], 32))[0].tolist()
        return out[:out.index(model.stop_id)] if model.stop_id in out else out

    for q in QUESTIONS:
        ids = writer.prompt_ids(q)
        assert ids == model.encode(q, None)["input_ids"], q
        g = writer.decoder.generate(writer.decoder.embed(ids), writer.config)
        assert g.tokens == torch_tokens(q), q
    assert torch_answerer.write_programs(list(QUESTIONS)) == [writer.write(q) for q in QUESTIONS]
    with model.llm.disable_adapter():  # the LoRA changes what is written: the bundle holds it merged
        assert any(torch_tokens(q) != writer.decoder.generate(writer.decoder.embed(writer.prompt_ids(q)),
                                                               writer.config).tokens for q in QUESTIONS)


def test_checked_decodings_rewrites_and_scores_equal_the_torch_models(tiny):
    """Checked decoding's rewrites (a program with its task fixed, and its log-probability): the
    bundle's decoder writes the same texts as torch and scores them alike; each starts with its
    task, and a likelier program has the higher score on both."""
    from training.eval.program_answerer import ProgramAnswerer  # noqa: PLC0415

    lalm, bundle = tiny
    torch_answerer = ProgramAnswerer(lalm, hear=None, max_new_tokens=32)
    writer = BundleProgramWriter(bundle, "fp32")
    tasks = ("sector", "navigate", "count", "rotate_by")
    for q in QUESTIONS[:2]:
        got_torch, got_bundle = torch_answerer.write_with_tasks(q, tasks), writer.write_with_tasks(q, tasks)
        assert [t for t, _ in got_torch] == [t for t, _ in got_bundle]
        assert all(t.startswith(task) for (t, _), task in zip(got_torch, tasks, strict=True))
        for (_, a), (_, b) in zip(got_torch, got_bundle, strict=True):
            assert a < 0 and a == pytest.approx(b, abs=1e-3)
        assert writer.write_with_tasks(q, tasks[:1]) == got_bundle[:1]  # remembered, per task


def test_the_answer_is_the_programs_run_on_what_was_heard(tiny):
    """Through the bundle answerer's own path (options, letters, fallback): a written program
    runs on the heard sources; what no program asks gets the tracks' description."""
    _, bundle = tiny
    answerer = BundleAnswerer(bundle, "fp32", hear=lambda clip: [DOG])
    answerer.writer.written.update({"Where is the dog?": "sector a=dog", "Is the dog behind me?": "sector a=dog "
                                    "claim=back", "Which way?": "not a program"})
    clip = Clip("c", np.zeros((2, 48000), np.float32), 48000)
    item = QAItem("q1", "c", "L1", "ask", "Where is the dog?", None, "?")
    assert answerer.answer(clip, item) == run_program(parse_program("sector a=dog"), answerer.heard_scene(clip))[1]
    assert answerer.answer(clip, item) == "The dog is to your back-left, about 2 metres away."
    choice = QAItem("q2", "c", "L1", "ask", "Where is the dog?", ["front", "back-left", "right"], "B")
    assert answerer.answer(clip, choice).startswith("B. ")
    assert answerer.answer(clip, QAItem("q3", "c", "L1", "ask", "Is the dog behind me?", None, "?")).startswith("No")
    assert answerer.answer(clip, QAItem("q4", "c", "L1", "ask", "What do you hear?", None, "?")).startswith("I hear")
    assert "q4" not in answerer.programs  # no program was written for it
    assert answerer.answer(clip, QAItem("q5", "c", "L1", "ask", "Which way?", None, "?")) != NOT_UNDERSTOOD
    strict = BundleAnswerer(bundle, "fp32", hear=lambda clip: [DOG], fallback=None)  # bench qa's way
    strict.writer.written["Which way?"] = "not a program"
    assert strict.answer(clip, QAItem("q5", "c", "L1", "ask", "Which way?", None, "?")) == NOT_UNDERSTOOD


BLOCKED = """
import numpy as np
from agent.answer.bundle_answerer import BundleAnswerer
from agent.core.predictor import Clip
from agent.core.scene import QAItem
a = BundleAnswerer(sys.argv[1], 'fp32')
a.writer.written['Where is the dog?'] = 'sector a=dog'
clip = Clip('quiet', np.zeros((2, 96000), np.float32), 48000)
print(a.answer(clip, QAItem('q', 'quiet', 'L1', 'ask', 'Where is the dog?', None, '?')))
a.answer(clip, QAItem('r', 'quiet', 'L1', 'ask', 'Which sound is nearest?', None, '?'))
print(a.programs['r'] == a.writer.written['Which sound is nearest?'], 'torch' in sys.modules)
"""


def test_the_answering_path_runs_with_torch_blocked(tiny):
    """The whole path (bundle check, encoder hearing, decoder, programs, sentences) with torch,
    transformers, training and export unimportable: silence holds no dog."""
    _, bundle = tiny
    res = run_without_torch(BLOCKED, bundle, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["I don't hear a dog.", "True False"]


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros((96000, 2), np.float32), 48000, subtype="FLOAT")
    return path


def test_ask_through_the_bundle(tiny, wav, capsys):
    _, bundle = tiny
    assert main(["ask", "--bundle", str(bundle), "--audio", str(wav), "--json", "Where is the dog?"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"].endswith("(fp32)") and out["heard"] == [] and "program" in out and out["answer"]


def _refused(argv, capsys, *needles) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("binaura: error:") == 1 and all(n in err for n in needles), err


def test_the_cli_refuses_a_corrupted_bundle(tiny, wav, tmp_path, capsys):
    _, bundle = tiny
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    ask = ["ask", "--bundle", str(b), "--audio", str(wav), "Where is the dog?"]
    onnx = b / "encoder" / "encoder.back.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    _refused(ask, capsys, "encoder/encoder.back.onnx: SHA-256 does not match")
    onnx.unlink()
    _refused(ask, capsys, "encoder/encoder.back.onnx is missing")
    m = json.loads((bundle / MANIFEST).read_text())
    (b / MANIFEST).write_text(json.dumps({**m, "format_version": m["format_version"] + 1}))
    _refused(ask, capsys, "is newer than this binaura reads")
    _refused(["ask", "--bundle", str(tmp_path / "none"), "--audio", str(wav), "Where?"], capsys, "manifest")
    _refused(["ask", "--bundle", str(bundle), "--audio", str(tmp_path / "no.wav"), "Where?"], capsys, "no.wav")
    with pytest.raises(BinauraError, match="SHA-256 does not match"):
        (b / MANIFEST).write_text(json.dumps(m))
        (b / "decoder_fp32.onnx").write_bytes(b"x" + (bundle / "decoder_fp32.onnx").read_bytes()[1:])
        BundleAnswerer(b, "fp32")


def test_export_refuses_to_overwrite_what_is_not_a_bundle(tiny, wav, tmp_path, capsys):
    lalm, _ = tiny
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    _refused(["export", "bundle", "--out", str(tmp_path / "mine"), "--model", str(lalm)], capsys,
             "refusing to overwrite", "notes.txt")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    _refused(["ask", "--bundle", str(tiny[1]), "--audio", str(wav), "Where?", "--model", "default"], capsys,
             "--bundle and --model")


def test_the_live_answerer_runs_programs_on_the_recent_tracks(tiny):
    """The live agent's bundle answerer: a program runs on the pipeline's tracks; what no program
    asks goes to the tracks' answerer."""
    from agent.answer.bundle_answerer import LiveBundleAnswerer  # noqa: PLC0415

    _, bundle = tiny
    track = type("Track", (), dict(label="dog", azimuth_deg=-100.0, elevation_deg=0.0, distance_m=1.0, t_start=0.0,
                                   t_last_hit=1.0, confidence=0.9))()
    pipeline = type("Pipeline", (), {"heard_tracks": lambda self, window_s: [track]})()
    asked = []
    live = LiveBundleAnswerer(bundle, lambda q, p: asked.append(q) or iter(["tracks."]), precision="fp32")
    live.writer.written["Where is the dog?"] = "sector a=dog"
    assert "".join(live("Where is the dog?", pipeline)) == "The dog is to your right, about 1 metre away."
    assert live.last_program == "sector a=dog" and not asked
    assert "".join(live("What is the person saying?", pipeline)) == "tracks." and asked == ["What is the person saying?"]


def test_bench_qa_takes_a_bundle_beside_the_torch_model(tiny, tmp_path, capsys):
    """`bench qa --model bundle:DIR:fp32` beside the torch model it was exported from, in one run:
    every question is answered by both and scored alike (the random tiny model writes programs
    that run nowhere, so both score 0; token-for-token equality is tested above)."""
    lalm, bundle = tiny
    data = tmp_path / "ds"
    assert main(["synth", "--preset", "demo", "--scenes", "2", "--seed", "5", "--out", str(data), "--quiet"]) == 0
    out = tmp_path / "qa.json"
    assert main(["bench", "qa", "--data", str(data), "--model", f"bundle:{bundle}:fp32,{lalm}", "--out", str(out),
                 "--quiet"]) == 0
    b, t = json.loads(out.read_text())["models"].values()
    assert b["model"].startswith("bundle:") and t["model"].startswith("program:")
    assert b["n"] == t["n"] > 10 and b["by_task"] == t["by_task"] and b["programs"] == t["programs"]
    assert main(["bench", "qa", "--data", str(data), "--model", f"bundle:{bundle}:int8", "--out", str(out)]) == 2
    assert "bundle:DIR:int4" in capsys.readouterr().err


def test_listen_answers_through_the_bundle(tiny, wav, tmp_path, capsys):
    """`listen --model bundle:DIR:fp32`: the live agent's questions go through the bundle's decoder
    (a random tiny model's program runs nowhere, so the tracks' answerer speaks: nothing is heard)."""
    _, bundle = tiny
    events = tmp_path / "events.jsonl"
    assert main(["listen", "--source", f"wav:{wav}", "--fast", "--model", f"bundle:{bundle}:fp32", "--narration", "off",
                 "--ask", "What do you hear?", "--events", str(events)]) == 0
    assert "ONNX Runtime" in capsys.readouterr().out
    answers = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "answer"]
    assert len(answers) == 1 and answers[0]["question"] == "What do you hear?" and answers[0]["text"]
    assert main(["listen", "--source", f"wav:{wav}", "--fast", "--model", f"bundle:{bundle}:int2"]) == 2


def test_the_default_bundle_is_built_once_found_by_its_parts_and_answers_ask(tiny, wav, tmp_path, monkeypatch,
                                                                               capsys):
    """Set-up builds the default bundle into the cache under a key of the parts it is built
    from; `ask` without --model or --bundle answers through it (ONNX Runtime), and
    `bundle:default` / `--bundle default` name it; other parts name another folder, so a
    stale bundle is never used; before set-up, `--bundle default` says how to build it."""
    from agent.answer.default_bundle import default_bundle_dir, is_built
    from agent.localize.encoder import DEFAULT_ENCODER_DIR
    from export import bundle_setup

    lalm, _ = tiny
    monkeypatch.setenv("BINAURA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bundle_setup, "default_parts", lambda: (lalm, DEFAULT_ENCODER_DIR))
    assert bundle_setup.built_default_bundle() is None
    _refused(["ask", "--bundle", "default", "--audio", str(wav), "Where is the dog?"], capsys, "make setup")

    folder = bundle_setup.ensure_default_bundle(progress=False)
    assert folder == default_bundle_dir(lalm, DEFAULT_ENCODER_DIR) and is_built(folder)
    assert folder.parent == tmp_path / "cache" / "bundle"
    assert set(read_bundle(folder).llm.decoders) == {"int4"}  # the edge's decoder only
    stamp = (folder / MANIFEST).stat().st_mtime_ns
    assert bundle_setup.ensure_default_bundle(progress=False) == folder  # built once
    assert (folder / MANIFEST).stat().st_mtime_ns == stamp

    assert main(["ask", "--audio", str(wav), "--json", "Where is the dog?"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == f"{folder} (int4)" and "program" in out and out["answer"]
    assert bundle_setup.resolve_bundle("default") == folder

    other = tmp_path / "lalm2"
    shutil.copytree(lalm, other)
    meta = json.loads((other / "lalm.json").read_text())
    (other / "lalm.json").write_text(json.dumps({**meta, "note": "retrained"}))
    assert default_bundle_dir(other, DEFAULT_ENCODER_DIR) != folder  # another model: another bundle
    monkeypatch.setattr(bundle_setup, "default_parts", lambda: (other, DEFAULT_ENCODER_DIR))
    assert bundle_setup.built_default_bundle() is None
