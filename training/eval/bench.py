"""Run a predictor over a dataset: localization and QA benchmarks, tables, plots."""

from __future__ import annotations

import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agent.core.dataset import Dataset, write_json
from agent.core.errors import BinauraError
from agent.core.predictor import LONG_CLIP_S, Answerer, Clip, Localizer
from agent.qa.programs import program_of
from training.eval.metrics import (
    FLOORS,
    METRIC_KEYS,
    floor_intervals,
    floor_score,
    floor_terms,
    localization_metrics,
    match_clip,
)
from training.qa.report import (
    BREAKDOWN_KEYS,
    DIRECTION_GROUPS,
    breakdown,
    direction_differences,
    direction_split,
)
from training.qa.score import is_correct


def _clip(ds: Dataset, scene, needs_audio: bool, reads_files: bool = False) -> Clip:
    """The clip a model is given: its audio loaded, or for a long clip and a model that reads
    files (`reads_files`), the wav's path, so an hour-long recording is never held at once."""
    if needs_audio and reads_files and scene.duration_s > LONG_CLIP_S:
        return Clip(scene.id, None, scene.sample_rate_hz, truth=scene, path=ds.audio_path(scene))
    audio, rate = ds.load_audio(scene) if needs_audio else (None, scene.sample_rate_hz)
    return Clip(scene.id, audio, rate, truth=scene)


def run_localize(ds: Dataset, model: Localizer, progress: bool = True) -> tuple[dict, list]:
    results = []
    t0 = time.perf_counter()
    for scene in tqdm(ds.scenes, desc=f"localize[{model.name}]", disable=not progress):
        preds = model.localize(_clip(ds, scene, model.needs_audio, getattr(model, "reads_files", False)))
        results.append(match_clip(scene, preds))
    metrics = localization_metrics(results)
    metrics["floor_score"], metrics["floor_terms"] = floor_score(metrics), floor_terms(metrics)
    metrics["floor_intervals"] = floor_intervals(results)
    metrics["model"] = model.name
    metrics["n_clips"] = len(ds.scenes)
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    metrics["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    return metrics, results


#: Questions a program-aided model writes per call when `run_qa` writes them up front.
PROGRAM_BATCH = 64


def run_qa(ds: Dataset, model: Answerer, progress: bool = True, records: list | None = None) -> dict:
    """QA accuracy of one model over the dataset's questions: overall, per level and task, by
    wording (training.qa.report) and, for a program-aided model, how often it wrote the
    question's program. `records`: a list that receives one record per question (qa_record)."""
    if not ds.qa:
        raise BinauraError(f"{ds.root}: no qa.jsonl; build one with binaura synth (QA is generated with the scenes)")
    by_level: dict[str, list[bool]] = defaultdict(list)
    by_task: dict[str, list[bool]] = defaultdict(list)
    oks = []
    groups: dict[str, list] = defaultdict(list)  # a clip's questions together (a model may batch them)
    for item in ds.qa:
        groups[item.scene_id].append(item)
    answers: dict[str, str] = {}
    ahead = getattr(model, "program_questions", None)  # a program-aided model: its programs first
    if ahead is not None:
        questions = ahead(ds.qa)
        for i in tqdm(range(0, len(questions), PROGRAM_BATCH), desc=f"programs[{model.name}]",
                      unit=f"x{PROGRAM_BATCH}", disable=not progress):
            model.write_programs(questions[i:i + PROGRAM_BATCH])
    bar = tqdm(total=len(ds.qa), desc=f"qa[{model.name}]", disable=not progress)
    for scene_id, items in groups.items():
        clip = _clip(ds, ds.by_id[scene_id], model.needs_audio)
        many = getattr(model, "answer_many", None)
        got = many(clip, items) if many else [model.answer(clip, q) for q in items]
        answers.update({q.id: a for q, a in zip(items, got, strict=True)})
        bar.update(len(items))
    bar.close()
    programs = getattr(model, "programs", {})
    for item in ds.qa:
        ok = is_correct(item, answers[item.id])
        if records is not None:
            records.append(qa_record(model.name, item, answers[item.id], ok, programs.get(item.id)))
        by_level[item.level].append(ok)
        by_task[item.task].append(ok)
        oks.append(ok)
    allv = [v for vs in by_level.values() for v in vs]

    def acc(v):
        return float(np.mean(v)) if v else None

    return {"n": len(allv), "overall": acc(allv), "L1": acc(by_level["L1"]), "L2": acc(by_level["L2"]),
            "L3": acc(by_level["L3"]), "by_task": {k: acc(v) for k, v in sorted(by_task.items())},
            # held-out vs seen wording, question form, absent-class questions (training.qa.report)
            "breakdown": breakdown(ds.qa, oks), "model": model.name,
            # the direction tasks apart from the others (agent.qa.tasks.DIRECTION_TASKS)
            "direction": direction_split(ds.qa, oks),
            # a program-aided model: how often it wrote the question's program (ProgramAnswerer.report)
            **({"programs": model.report(ds)} if hasattr(model, "report") else {})}


def qa_record(model: str, item, answer: str, correct: bool, program: str | None) -> dict:
    """One question's result for error analysis (`bench qa --items`): the question and its
    wording keys (training.qa.report.BREAKDOWN_KEYS), the expected and given answers, and the
    program a program-aided model wrote beside the reference one (when the item has one)."""
    rec = {"model": model, "id": item.id, "scene_id": item.scene_id, "level": item.level,
           "task": item.task, "question": item.question, "options": item.options,
           "expected": item.answer, "answer": answer, "correct": bool(correct)}
    rec.update({k: item.extra[k] for k in BREAKDOWN_KEYS if k in item.extra})
    if program is not None:
        rec["program"] = program
        if "params" in item.extra:
            rec["reference_program"] = program_of(item).text()
    return rec


def _fmt(v, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else (f"{v:.2f}" if isinstance(v, float) else str(v))


def localize_table(all_metrics: dict[str, dict], conditions: bool = True) -> str:
    """A table: one row per (model, condition). det_f1 is the DCASE F-score (class and
    direction within 20 deg; `-` for a model without classes), det_f1_any20 the same gate
    without the class check (training.eval.metrics)."""
    cols = [("n_sources", "n", False), ("angular_error_mean_deg", "ang_err", False),
            ("azimuth_mae_deg", "az_mae", False), ("elevation_mae_deg", "el_mae", False),
            ("front_back_confusion", "fb_conf", True), ("er20", "er20", True),
            ("distance_mae_m", "dist_mae", False), ("distance_er05", "der05", True),
            ("class_accuracy", "cls_acc", True), ("detection_f1", "det_f1", True),
            ("detection_f1_20deg_any_class", "det_f1_any20", True)]
    assert set(METRIC_KEYS) <= {c for c, _, _ in cols}
    rows = [["model", "condition"] + [h for _, h, _ in cols]]
    for model, m in all_metrics.items():
        items = [("all", m)] + (list(m["by_condition"].items()) if conditions else [])
        for cond, mm in items:
            rows.append([model, cond] + [_fmt(mm[k], pct) for k, _, pct in cols])
    return _render(rows)


def floors_table(all_metrics: dict[str, dict]) -> str:
    """Each model's floor score and its terms (each of the encoder issue's floors as metric /
    floor: <= 1 meets it)."""
    heads = [f"{name}/{floor:g}" for _, _, floor, name in FLOORS]
    rows = [["model", "floor_score"] + heads]
    for model, m in all_metrics.items():
        terms = list((m.get("floor_terms") or {}).values()) or [None] * len(heads)
        rows.append([model] + ["-" if t is None else f"{t:.3f}" for t in [m.get("floor_score"), *terms]])
    return _render(rows)


def _floor_cell(key: str, value: float, ci: list[float], signed: bool = False) -> str:
    """A floor metric and its interval as a table cell: degrees for angles, percent (or
    percentage points, signed) for the rates."""
    unit, pct = (1.0, "") if key == "angular_error_mean_deg" else (100.0, "" if signed else "%")
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(value * unit)}{pct} [{f.format(ci[0] * unit)}, {f.format(ci[1] * unit)}]"


def floor_intervals_table(all_metrics: dict[str, dict]) -> str:
    """Each floor's metric with its 95% interval from a clip bootstrap (`floor_intervals`), in
    the metric's own units: degrees, or percent for the rates."""
    heads = [name for _, _, _, name in FLOORS]
    rows = [["model"] + heads]
    for model, m in all_metrics.items():
        cells = []
        for cond, key, floor, _ in FLOORS:
            ci = (m.get("floor_intervals") or {}).get(f"{cond}:{key}")
            term = (m.get("floor_terms") or {}).get(f"{cond}:{key}")
            cells.append("-" if ci is None or term is None else _floor_cell(key, term * floor, ci))
        rows.append([model] + cells)
    return _render(rows)


def floor_differences(all_results: dict[str, list]) -> dict[str, dict]:
    """The first model's floor metrics minus each other model's, as 95% paired-bootstrap
    intervals (`floor_intervals(..., minus=...)`), keyed by the other model's name."""
    first, *others = all_results
    return {n: floor_intervals(all_results[first], minus=all_results[n]) for n in others}


def floor_differences_table(all_metrics: dict[str, dict], diffs: dict[str, dict]) -> str:
    """One row per other model: the first model's metric minus that model's, and its paired
    interval (degrees, or percentage points for the rates); an interval that excludes 0
    separates the two."""
    first = next(iter(all_metrics))
    rows = [["difference"] + [name for _, _, _, name in FLOORS]]
    for other, iv in diffs.items():
        cells = []
        for cond, key, floor, _ in FLOORS:
            k = f"{cond}:{key}"
            ta, tb, ci = all_metrics[first]["floor_terms"].get(k), all_metrics[other]["floor_terms"].get(k), iv.get(k)
            cells.append("-" if ci is None or ta is None or tb is None
                         else _floor_cell(key, (ta - tb) * floor, ci, signed=True))
        rows.append([f"{first} - {other}"] + cells)
    return _render(rows)


def floor_score_table(rows: dict[str, dict]) -> str:
    """`bench validation` rows: each checkpoint's floor score with its 95% clip-bootstrap
    interval and, after the first, the first's score minus its own with the paired interval
    (positive: this checkpoint scores lower, i.e. better; an interval above 0 separates them)."""
    first = next(iter(rows))
    out = [["checkpoint", "floor score [95%]", f"{first} - this [95%]"]]
    for name, r in rows.items():
        s, ci = r.get("floor_score"), r.get("floor_score_ci")
        cell = "-" if s is None or ci is None else f"{s:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
        d, dci = rows[first].get("floor_score"), r.get("floor_score_diff_ci")
        diff = "-" if d is None or s is None or dci is None else f"{d - s:+.3f} [{dci[0]:+.3f}, {dci[1]:+.3f}]"
        out.append([name, cell, diff])
    return _render(out)


def class_table(all_metrics: dict[str, dict]) -> str:
    """Angular error / front-back confusion by true class (all sources), one column per model."""
    models = [m for m in all_metrics if all_metrics[m].get("by_class")]
    labels = sorted({c for m in models for c in all_metrics[m]["by_class"]})
    rows = [["class", "n"] + [f"{m} ang_err / fb" for m in models]]
    for c in labels:
        cells = []
        for m in models:
            cm = all_metrics[m]["by_class"].get(c, {})
            ang, fb = cm.get("angular_error_mean_deg"), cm.get("front_back_confusion")
            cells.append("-" if ang is None else f"{ang:.1f} / {100 * fb:.0f}%")
        n = next(all_metrics[m]["by_class"][c]["n_sources"] for m in models if c in all_metrics[m]["by_class"])
        rows.append([c, str(n)] + cells)
    return _render(rows)


def qa_table(all_metrics: dict[str, dict]) -> str:
    models = list(all_metrics)
    tasks = sorted({t for m in all_metrics.values() for t in m["by_task"]})
    rows = [["", *models]]
    for key in ("overall", "L1", "L2", "L3"):
        rows.append([key] + [_fmt(all_metrics[m][key], True) for m in models])
    for key, values in (("wording", ("seen", "heldout")), ("form", ("choice", "yesno", "open")),
                        ("asks_absent", ("true",))):
        for v in values:
            rows.append([f"{key}={v}"] + [_fmt(all_metrics[m].get("breakdown", {}).get(key, {}).get(v), True)
                                          for m in models])
    if any("programs" in all_metrics[m] for m in models):
        for key in ("exact", "same_answer_on_truth"):
            rows.append([f"program {key}"] + [_fmt(all_metrics[m].get("programs", {}).get(key), True)
                                              for m in models])
    for t in tasks:
        rows.append([t] + [_fmt(all_metrics[m]["by_task"].get(t), True) for m in models])
    rows.append(["n"] + [str(all_metrics[m]["n"]) for m in models])
    return _render(rows)


def direction_table(all_metrics: dict[str, dict]) -> str:
    """The direction tasks (agent.qa.tasks.DIRECTION_TASKS) and the other tasks: each model's
    accuracy and question count, then the first model's direction accuracy minus each other
    model's, in percentage points (issue 20: binaural minus mono >= 25)."""
    models = list(all_metrics)
    rows = [["", *models]]
    for g in DIRECTION_GROUPS:
        cells = []
        for m in models:
            s = (all_metrics[m].get("direction") or {}).get(g)
            cells.append("-" if s is None else f"{_fmt(s['accuracy'], True)} (n={s['n']})")
        rows.append([f"{g} tasks"] + cells)
    if len(models) > 1:
        minus = direction_differences(all_metrics)["minus"]
        rows.append([f"direction: {models[0]} - this"] + ["-"] + [
            "-" if minus[m] is None else f"{100 * minus[m]:+.1f} pts" for m in models[1:]])
    return _render(rows)


def _render(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def polar_plot(results_by_model: dict[str, list], path: str | Path) -> None:
    """Polar scatter: angle = true azimuth (0 ahead, left counter-clockwise), radius = error."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    n = len(results_by_model)
    fig, axes = plt.subplots(1, n, subplot_kw={"projection": "polar"}, figsize=(4.2 * n, 4.6), squeeze=False)
    for ax, (name, results) in zip(axes[0], results_by_model.items()):
        pairs = [p for r in results for p in r.pairs]
        theta = np.deg2rad([p.true_azimuth_deg for p in pairs])
        err = np.array([p.angular_deg for p in pairs])
        fb = np.array([p.front_back for p in pairs], dtype=bool)
        ax.set_theta_zero_location("N")
        ax.set_theta_direction(1)  # counter-clockwise: +90 (left) on the left
        ax.set_thetagrids(range(0, 360, 45), ["0", "45", "90 L", "135", "180", "-135", "-90 R", "-45"])
        if len(pairs):
            ax.scatter(theta[~fb], err[~fb], s=6, alpha=0.6, label="matched")
            ax.scatter(theta[fb], err[fb], s=8, alpha=0.8, c="red", label="front/back confusion")
        ax.set_rlim(0, 180)
        ax.set_title(f"{name}: error (deg) vs true azimuth", fontsize=9)
        ax.legend(loc="lower left", fontsize=7, bbox_to_anchor=(-0.1, -0.15))
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def save_metrics(path: str | Path, obj: dict) -> None:
    write_json(path, obj)
