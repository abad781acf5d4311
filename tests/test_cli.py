"""End to end through the command line on a tiny dataset."""

import json

import pytest
import torch

from export.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = out / "cfg.json"
    cfg.write_text(json.dumps({"duration_s": 1.5, "event_duration_s": [0.8, 1.5], "rt60_s": [0.2, 0.4]}))
    assert main(["synth", "--out", str(out / "ds"), "--scenes", "6", "--seed", "3", "--preset", "bench",
                 "--config", str(cfg), "--workers", "2", "--quiet"]) == 0
    return out


def test_bench_localize_leaves_its_files_when_its_report_cannot_be_printed(tiny, monkeypatch):
    """`bench localize ... | head`: the pipe closes before the tables are printed; the metrics
    and the plot are already written."""
    out = tiny / "piped.json"

    def closed_pipe(*args, **kwargs):
        raise BrokenPipeError("stdout closed")

    monkeypatch.setattr("builtins.print", closed_pipe)
    with pytest.raises(BrokenPipeError):
        main(["bench", "localize", "--data", str(tiny / "ds"), "--model", "oracle", "--out", str(out), "--quiet"])
    assert json.loads(out.read_text())["model"] == "oracle" and out.with_suffix(".png").is_file()


def test_bench_localize_writes_every_metric_key(tiny):
    out = tiny / "loc.json"
    assert main(["bench", "localize", "--data", str(tiny / "ds"), "--model", "oracle,gccphat,chance",
                 "--out", str(out), "--quiet"]) == 0
    m = json.loads(out.read_text())
    for k in ("n_sources", "angular_error_mean_deg", "azimuth_mae_deg", "elevation_mae_deg",
              "front_back_confusion", "er20", "distance_mae_m", "distance_er05", "class_accuracy",
              "detection_f1", "by_condition"):
        assert k in m
    assert m["angular_error_mean_deg"] == 0.0 and m["class_accuracy"] == 1.0
    assert m["models"]["gccphat"]["class_accuracy"] is None
    # the floors: the oracle meets each with nothing to spare; GCC-PHAT names no class or distance
    assert all(v in (0.0, None) for v in m["models"]["oracle"]["floor_terms"].values())
    assert all(v is None for k, v in m["models"]["gccphat"]["floor_terms"].items() if "distance" in k or "class" in k)
    # the oracle minus GCC-PHAT, paired over the same clips: the oracle is never worse on angle,
    # and metrics GCC-PHAT does not produce have no difference
    d = m["floor_differences"]
    assert d["model"] == "oracle" and set(d["minus"]) == {"gccphat", "chance"}
    for k, iv in d["minus"]["gccphat"].items():
        if "distance" in k or "class" in k:
            assert iv is None
        elif "angular" in k and iv is not None:
            assert iv[0] <= iv[1] <= 0.0
    assert any(iv is not None for k, iv in d["minus"]["gccphat"].items() if "angular" in k)
    assert (tiny / "loc.png").stat().st_size > 1000


def test_bench_qa_oracle_scores_100(tiny):
    out = tiny / "qa.json"
    assert main(["bench", "qa", "--data", str(tiny / "ds"), "--model", "oracle,text-only,chance",
                 "--out", str(out), "--quiet"]) == 0
    m = json.loads(out.read_text())
    assert m["overall"] == 1.0 and m["L1"] == 1.0 and m["L2"] == 1.0 and m["L3"] == 1.0
    assert m["models"]["chance"]["overall"] < 0.5
    # the direction tasks apart (issue 20): the oracle minus chance on them, recorded
    d, o = m["direction"]["direction"], m["direction"]["other"]
    assert d["accuracy"] == o["accuracy"] == 1.0 and d["n"] + o["n"] == m["n"]
    diff = m["direction_differences"]
    assert diff["model"] == "oracle" and set(diff["minus"]) == {"text-only", "chance"}
    assert diff["minus"]["chance"] == pytest.approx(1.0 - m["models"]["chance"]["direction"]["direction"]["accuracy"])
    assert m["complete"] is True


def test_bench_qa_keeps_the_rows_it_finished_when_a_later_one_fails(tiny):
    """Each row is saved as it ends: a run stopped by its third model keeps the first two."""
    out = tiny / "qa-partial.json"
    assert main(["bench", "qa", "--data", str(tiny / "ds"), "--model", "oracle,chance,bundle:/nonexistent",
                 "--out", str(out), "--quiet"]) == 2
    m = json.loads(out.read_text())
    assert m["complete"] is False and set(m["models"]) == {"oracle", "chance"}
    assert m["overall"] == 1.0 and m["models"]["chance"]["overall"] < 0.5


def test_bad_input_gives_one_clear_error(tiny, tmp_path, capsys):
    assert main(["bench", "localize", "--data", str(tmp_path), "--out", str(tmp_path / "m.json")]) == 2
    assert "scenes.jsonl" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "x"), "--scenes", "-2"]) == 2
    assert "--scenes must be >= 1" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"classes": ["dog", "dragon"], "max_sources": 2}))
    assert main(["synth", "--out", str(tmp_path / "y"), "--scenes", "1", "--config", str(bad)]) == 2
    assert "dragon" in capsys.readouterr().err
    assert not (tmp_path / "y" / "scenes.jsonl").exists()
    # results are keyed by model name: a name given twice is refused, not silently overwritten
    assert main(["bench", "localize", "--data", str(tiny / "ds"), "--model", "gccphat,oracle,gccphat",
                 "--out", str(tmp_path / "m.json"), "--quiet"]) == 2
    assert "both report as 'gccphat'" in capsys.readouterr().err and not (tmp_path / "m.json").exists()


def test_bridge_record_from_an_emulated_board(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    from firmware_bridge.emulator import DeviceEmulator, FaultConfig, PtyLink

    x = (np.random.default_rng(0).uniform(-0.3, 0.3, (48_000, 2))).astype(np.float32)
    link = PtyLink(DeviceEmulator(x, 48_000, 480, hello_s=0.1), FaultConfig(drop_rate=0.02, seed=2),
                   speed=2.0).start()
    try:
        out = tmp_path / "take.wav"
        assert main(["bridge", "record", f"bridge:serial://{link.port}", "--seconds", "0.8", "--out", str(out)]) == 0
    finally:
        link.stop()
    data, rate = sf.read(out)
    assert rate == 48_000 and data.shape[1] == 2 and len(data) > 10_000
    assert "gaps" in capsys.readouterr().out
    assert main(["bridge", "probe", "bridge:tcp://x:1"]) == 2
    assert "unknown transport 'tcp'" in capsys.readouterr().err


def test_train_export_bench_an_encoder_end_to_end(tmp_path):
    """`binaura train encoder` -> `export encoder` -> `bench localize` with the checkpoint and the export."""
    run, exp = tmp_path / "run", tmp_path / "exp"
    assert main(["train", "encoder", "--data", str(tmp_path / "train"), "--scenes", "10", "--size", "tiny",
                 "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--val-clips", "2",
                 "--workers", "1", "--out", str(run)]) == 0
    for name in ("best.pt", "last.pt", "loss.png", "history.json"):
        assert (run / name).exists()
    # resumable: continue the same run to more steps
    assert main(["train", "encoder", "--data", str(tmp_path / "train"), "--size", "tiny", "--steps", "6",
                 "--batch-size", "4", "--eval-every", "2", "--val-clips", "2", "--out", str(run), "--resume",
                 "--no-polar-heads", "sphere", "--w-distance", "0.5"]) == 0
    hist = json.loads((run / "history.json").read_text())
    assert max(h["step"] for h in hist) == 6
    assert json.loads((run / "train_config.json").read_text())["w_distance"] == 0.5
    # `bench validation` re-scores a checkpoint on the run's held-out clips: the pass that made best.pt
    val = tmp_path / "val.json"
    assert main(["bench", "validation", "--data", str(tmp_path / "train"), "--model", str(run / "best.pt"),
                 "--clips", "2", "--out", str(val), "--quiet"]) == 0
    row = json.loads(val.read_text())["models"][str(run / "best.pt")]
    best = torch.load(run / "best.pt", weights_only=True)["metrics"]
    assert row["clips"] == 2 and row["seld_score"] == pytest.approx(best["seld_score"], abs=1e-9)
    assert main(["bench", "validation", "--data", str(tmp_path / "train"), "--model", str(run / "nope.pt")]) == 2
    # a selection set: every clip scored, its feature cache built where it is missing
    assert main(["bench", "validation", "--data", str(tmp_path / "train"), "--model", str(run / "best.pt"),
                 "--cache", str(tmp_path / "sel-cache"), "--all", "--out", str(val), "--quiet"]) == 0
    row = json.loads(val.read_text())["models"][str(run / "best.pt")]
    assert row["clips"] == 10 and (tmp_path / "sel-cache" / "meta.json").exists() and "floor_score" in row
    # a weight average of a checkpoint with itself scores the same; the paired difference is 0
    avg = tmp_path / "avg.pt"
    assert main(["train", "average", "--checkpoints", f"{run / 'best.pt'},{run / 'best.pt'}", "--out", str(avg)]) == 0
    assert main(["train", "average", "--checkpoints", f"{run / 'best.pt'},{run / 'nope.pt'}", "--out", str(avg)]) == 2
    assert main(["bench", "validation", "--data", str(tmp_path / "train"), "--model", f"{run / 'best.pt'},{avg}",
                 "--cache", str(tmp_path / "sel-cache"), "--all", "--out", str(val), "--quiet"]) == 0
    rows = json.loads(val.read_text())["models"]
    a, b = rows[str(run / "best.pt")], rows[str(avg)]
    assert b["floor_score"] == pytest.approx(a["floor_score"], abs=1e-6)
    assert "floor_score_diff_ci" not in a and "floor_intervals" in a and "floor_differences" in b
    if a["floor_score"] is not None:
        assert a["floor_score_ci"][0] <= a["floor_score"] <= a["floor_score_ci"][1]
        assert b["floor_score_diff_ci"] == pytest.approx([0.0, 0.0], abs=1e-6)
    # an output ensemble of a checkpoint with itself (a.pt+a.pt) also scores the same
    ens = f"{run / 'best.pt'}+{run / 'best.pt'}"
    assert main(["bench", "validation", "--data", str(tmp_path / "train"), "--model", f"{run / 'best.pt'},{ens}",
                 "--cache", str(tmp_path / "sel-cache"), "--all", "--out", str(val), "--quiet"]) == 0
    rows = json.loads(val.read_text())["models"]
    assert rows[ens]["floor_score"] == pytest.approx(rows[str(run / "best.pt")]["floor_score"], abs=1e-6)
    assert rows[ens]["val_loss"] == pytest.approx(rows[str(run / "best.pt")]["val_loss"], abs=1e-4)
    assert main(["export", "encoder", "--checkpoint", str(run / "best.pt"), "--out", str(exp)]) == 0
    out = tmp_path / "loc.json"
    ds = str(tmp_path / "train")
    assert main(["bench", "localize", "--data", ds, "--model", f"{run / 'best.pt'},{exp}", "--out", str(out),
                 "--quiet", "--brief"]) == 0
    m = json.loads(out.read_text())["models"]
    torch_m, onnx_m = m["torch:best.pt"], m[f"onnx-fp32:{exp.name}"]
    # the export hears what the checkpoint hears: the same metrics of its predictions (the
    # count of true sources is the dataset's, so it is no check of the model)
    assert torch_m["n_sources"] == onnx_m["n_sources"] == sum(len(s["sources"]) for s in
                                                              map(json.loads, open(f"{ds}/scenes.jsonl")))
    for k in ("detection_f1", "class_accuracy", "front_back_confusion", "er20"):
        assert torch_m[k] == onnx_m[k], k
    for k in ("angular_error_mean_deg", "distance_mae_m"):
        assert (torch_m[k] is None and onnx_m[k] is None) or abs(torch_m[k] - onnx_m[k]) < 0.01, k
    speed = tmp_path / "speed.json"
    assert main(["bench", "speed", "--model", str(exp), "--checkpoint", str(run / "best.pt"), "--seconds", "3",
                 "--out", str(speed)]) == 0
    s = json.loads(speed.read_text())
    # faster than real time; the run's total time (RTF x audio) covers its hops at the median
    # cost (within the spread of hop times); a hop of 5 frames at 10 per second is 0.5 s
    assert s["hop_s"] == pytest.approx(0.5) and s["hops"] == pytest.approx(3 / 0.5, abs=1)
    assert 0 < s["encoder_ms_per_hop"] <= s["encoder_ms_per_hop_p95"] < 1e3 * s["hop_s"]
    assert 0 < s["encoder_rtf"] < 1
    assert s["encoder_rtf"] * 3e3 >= 0.5 * s["hops"] * s["encoder_ms_per_hop"]
    assert 50 < s["peak_rss_mb"] < 24_000  # a process's peak, in MB
    # no language model is measured yet: its keys are present and null, as the contract says
    assert s["ttft_ms"] is None and s["decode_tok_s"] is None
    assert set(s["backends"]) == {"onnxruntime-fp32", "onnxruntime-fp32 + mirror", "onnxruntime-fp16",
                                  "onnxruntime-fp32, windows", f"torch-eager {torch.__version__}"}
    assert s["stateful"] is True  # a fresh export streams with the front/back pair


def test_train_encoder_without_data_says_what_to_do(tmp_path, capsys):
    assert main(["train", "encoder", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "--scenes" in capsys.readouterr().err


def _lateral_deg(az, el):
    """The interaural (lateral) angle: what two ears hear without ambiguity."""
    import math

    return math.degrees(math.asin(math.cos(math.radians(el)) * math.sin(math.radians(az))))


def test_demo_localizes_with_the_shipped_encoder_beside_the_baseline(tmp_path, capsys):
    """The demo says where each source is and where each model hears it: the shipped encoder
    names every source's class, puts it on the right side (lateral angle within 20 deg) and
    errs less in all than the classical baseline; each printed error is the great circle
    between the printed directions."""
    import re

    from agent.core.geometry import great_circle_deg

    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    text = capsys.readouterr().out
    assert "models: encoder, gccphat" in text
    where = r"\((?P<az>[-+]\d+) deg(?:, elevation (?P<el>[-+]\d+) deg)?"
    truth_re = re.compile(rf"^(?P<name>[A-Z][^(]*?) \([\d.]+-[\d.]+ s\) is [^(]*{where}")
    heard_re = re.compile(rf"^    (?P<model>\w+) +hears (?P<what>.+?) (?:to your|in front|behind)[^(]*{where}"
                          rf".*: (?P<off>\d+) deg off")
    truths, heard = [], {"encoder": [], "gccphat": []}
    for line in text.splitlines():
        if m := truth_re.match(line):
            truths.append((m["name"].lower(), int(m["az"]), int(m["el"] or 0)))
        elif m := heard_re.match(line):
            heard[m["model"]].append((m["what"], int(m["az"]), int(m["el"] or 0), int(m["off"])))
    assert len(truths) == 3 and len(heard["encoder"]) == 3 and len(heard["gccphat"]) == 3  # three sources
    for (name, az, el), (what, paz, pel, off) in zip(truths, heard["encoder"], strict=True):
        assert what == name  # "the dog" heard as "the dog"
        assert abs(_lateral_deg(paz, pel) - _lateral_deg(az, el)) < 20.0
        assert abs(great_circle_deg(paz, pel, az, el) - off) <= 2.0  # printed directions are rounded
    assert all(what == "a source" for what, *_ in heard["gccphat"])  # the baseline names no class
    assert sum(h[3] for h in heard["encoder"]) < sum(h[3] for h in heard["gccphat"])
    # the live agent on the same audio narrates each start and answers from its tracks
    live = text.split("The live agent on the same audio")[1]
    assert live.count(" started ") >= 2 and "Q: Where is " in live
    where_q, where_a = live.split("Q: Where is ")[1].splitlines()[:2]
    assert "A: The " in where_a
    if "[program: " in where_a:  # the shipped language model wrote the question as a program
        from agent.core.labels import label_of_name

        asked = label_of_name(where_q.rstrip("?"))
        assert f"[program: sector a={asked}]" in where_a and "If I turn around" in live
    else:  # no language model in this checkout: the tracks answer, in degrees
        assert "degrees" in where_a


def test_encoder_model_options_are_parsed_and_checked():
    from agent.core.errors import BinauraError
    from export.registry import make_localizer

    loc = make_localizer("encoder:mirror")
    assert loc.runtime.mirror_tta and loc.runtime.precision == "fp32" and loc.name == "encoder:mirror"
    # plain "encoder" follows the shipped manifest (mirror averaging, chosen on the selection set)
    assert make_localizer("encoder").runtime.mirror_tta is True
    single = make_localizer("encoder:single")
    assert single.runtime.mirror_tta is False and single.name == "encoder:single"
    with pytest.raises(BinauraError, match=":single"):
        make_localizer("encoder:mirror:single")
    with pytest.raises(BinauraError, match=":mirror"):
        make_localizer("encoder:mirrored")
    scaled = make_localizer("encoder:single:scale=1.2")
    assert scaled.runtime.head_scale == 1.2 and scaled.runtime.mirror_tta is False
    assert scaled.name == "encoder:scale=1.2:single"
    with pytest.raises(BinauraError, match=r"scale must be a number in \[0.5, 2.0\]"):
        make_localizer("encoder:scale=9")
    with pytest.raises(BinauraError, match=":scale=S"):
        make_localizer("encoder:scale=1.1:scale=1.2")


def test_train_sft_then_ask_and_bench_qa_with_the_model(tmp_path, capsys):
    """`train align` -> `train sft --init` -> `bench qa --model RUN` and `ask --model RUN`, on a tiny
    base LLM: every answer is scored, `ask --json` reports what the encoder heard."""
    from training.models.llm import save_tiny_llm

    base = save_tiny_llm(tmp_path / "tiny")
    common = ["--data", str(tmp_path / "ds"), "--base", str(base), "--tokens", "4", "--batch-size", "2",
              "--eval-every", "2", "--val-clips", "1", "--quiet"]
    assert main(["train", "align", "--scenes", "3", "--out", str(tmp_path / "align"), "--steps", "2", *common]) == 0
    assert main(["train", "sft", "--out", str(tmp_path / "sft"), "--steps", "2", "--lora-r", "2",
                 "--init", str(tmp_path / "align" / "model"), *common]) == 0
    out = tmp_path / "qa.json"
    assert main(["bench", "qa", "--data", str(tmp_path / "ds"), "--model", f"{tmp_path / 'sft'},chance",
                 "--out", str(out), "--quiet"]) == 0
    m = json.loads(out.read_text())["models"]
    n_questions = sum(1 for _ in open(tmp_path / "ds" / "qa.jsonl"))
    row = m[f"lalm:{tmp_path / 'sft'}"]
    assert row["n"] == n_questions and 0.0 <= row["overall"] <= 1.0
    capsys.readouterr()
    wav = next((tmp_path / "ds" / "audio").glob("*.wav"))
    assert main(["ask", "--model", str(tmp_path / "sft"), "--audio", str(wav), "Where is the dog?", "--json"]) == 0
    ans = json.loads(capsys.readouterr().out)
    assert ans["question"] == "Where is the dog?" and isinstance(ans["answer"], str) and ans["seconds"] > 0
    assert all(-180 < s["azimuth_deg"] <= 180 for s in ans["heard"])
    assert main(["ask", "--model", str(tmp_path / "sft"), "--audio", str(wav), "  "]) == 2
    assert "question is empty" in capsys.readouterr().err
    assert main(["ask", "--model", str(tmp_path / "nope"), "--audio", str(wav), "Where?"]) == 2
    assert "not a binaura language-model folder" in capsys.readouterr().err


def test_train_parse_then_bench_qa_binaural_and_mono_and_ask(tmp_path, capsys):
    """The program-aided model (`train parse`, no encoder cache) on a tiny base LLM: bench qa
    scores it beside its mono twin and reports how often it wrote the right program; `ask
    --json` gives the program it wrote and what the encoder heard."""
    from training.models.llm import save_tiny_llm

    base = save_tiny_llm(tmp_path / "tiny")
    assert main(["train", "parse", "--data", str(tmp_path / "ds"), "--scenes", "2", "--base", str(base),
                 "--out", str(tmp_path / "parse"), "--steps", "2", "--lora-r", "2", "--batch-size", "2",
                 "--eval-every", "2", "--val-clips", "1", "--quiet"]) == 0
    assert not (tmp_path / "ds" / "encoder-outputs").exists()  # the questions alone: no encoder cache
    out = tmp_path / "qa.json"
    run = str(tmp_path / "parse")
    assert main(["bench", "qa", "--data", str(tmp_path / "ds"), "--model", f"{run},{run}:mono,{run}:names",
                 "--out", str(out), "--items", str(tmp_path / "items.jsonl"), "--quiet"]) == 0
    m = json.loads(out.read_text())["models"]
    n_questions = sum(1 for _ in open(tmp_path / "ds" / "qa.jsonl"))
    rows = [json.loads(line) for line in open(tmp_path / "items.jsonl")]
    assert len(rows) == 3 * n_questions and {r["model"] for r in rows} == set(m)
    for name, row in m.items():  # the records add up to the table
        mine = [r["correct"] for r in rows if r["model"] == name]
        assert sum(mine) / len(mine) == pytest.approx(row["overall"])
    assert all(isinstance(r["program"], str) and "reference_program" in r for r in rows)
    assert set(m) == {f"program:{run}", f"program:{run}:mono", f"program:{run}:names"}
    for row in m.values():
        assert row["n"] == n_questions and row["programs"]["n"] == n_questions
        assert 0.0 <= row["programs"]["exact"] <= row["programs"]["same_answer_on_truth"]  # exact implies right
    capsys.readouterr()
    wav = next((tmp_path / "ds" / "audio").glob("*.wav"))
    assert main(["ask", "--model", run, "--audio", str(wav), "Where is the dog?", "--json"]) == 0
    ans = json.loads(capsys.readouterr().out)
    assert isinstance(ans["program"], str) and isinstance(ans["answer"], str)
    assert all(-180 < s["azimuth_deg"] <= 180 for s in ans["heard"])
    from agent.core.errors import BinauraError
    from export.registry import make_answerer

    with pytest.raises(BinauraError, match=":mono"):
        make_answerer(f"{tmp_path / 'nope'}:mono", None)
    with pytest.raises(BinauraError, match="':unchecked', ':grounded' and ':ungrounded' apply to a program-aided"):
        make_answerer(f"{tmp_path / 'nope'}:names", None)
    with pytest.raises(BinauraError, match="apply to a program-aided"):
        make_answerer(f"{tmp_path / 'nope'}:ungrounded", None)
