"""Choosing `encoder:yamnet`'s parameters on the selection sets (agent.localize.relabel).

Two steps, so that the sweep is cheap:
- `cache`: the plain encoder's decoded sources on a set's scenes, their benchmark matching to
  the true sources (training.eval.metrics.match_clip, as `bench localize` scores them), and per
  source YAMNet's label scores on its span with one steering method; one .npz per run.
- `sweep`: the rule's two parameters (MIN_SCORE, MAX_CONFIDENCE) over a grid, in numpy, on the
  cached sources through agent.localize.relabel.relabel itself: class accuracy exactly as the
  benchmark counts it (relabelling moves no source, so the direction matching, and with it
  the denominator, stays the plain encoder's; checked against `bench localize`'s own path).

    python -m export.relabel_sweep cache --data data/select_real --steer better_ear \
        --out out/relabel/real_better_ear.npz
    python -m export.relabel_sweep cache --data data/select11 --limit 100 --steer better_ear \
        --out out/relabel/s11_better_ear.npz
    python -m export.relabel_sweep sweep --real out/relabel/real_better_ear.npz \
        --synth out/relabel/s11_better_ear.npz

Only selection sets (data/select_real, data/select11) are ever cached: data/bench and
data/bench-real are the test sets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from agent.core.dataset import read_dataset
from agent.core.labels import LABELS
from agent.core.seld import decode_slots
from agent.localize.encoder import EncoderLocalizer
from agent.localize.relabel import check_steer_method, relabel, source_hearing
from export.yamnet_fusion import class_evidence
from training.eval.metrics import match_clip

TEST_SETS = ("bench", "bench-real")


def cache(data: str, steer_method: str, out: str, start: int = 0, limit: int | None = None) -> dict:
    """Run the plain encoder and YAMNet over scenes [start, start + limit) of `data` and save
    per source: the encoder's label index, confidence and class evidence (export.yamnet_fusion),
    and YAMNet's hearing: its (len(LABELS),) label scores, 521 AudioSet scores and 1024-d
    embedding; per matched pair: the source's row and the true label's index."""
    if Path(data).name in TEST_SETS:
        raise SystemExit(f"{data} is a test set; choose on data/select_real and data/select11")
    from agent.localize.yamnet import YamnetRuntime  # noqa: PLC0415

    ds = read_dataset(data)
    check_steer_method(steer_method)
    scenes = ds.scenes[start:None if limit is None else start + limit]
    enc = EncoderLocalizer()
    rt = enc.runtime
    yam = YamnetRuntime()
    rows = {k: [] for k in ("clip", "label", "conf", "yamnet", "evidence", "audioset", "embedding")}
    pair_row, pair_true, pair_real = [], [], []
    t0 = time.process_time()
    for ci, scene in enumerate(scenes):
        audio, rate = ds.load_audio(scene)
        fr = rt.run_audio(audio, rate, scene.id)
        found = decode_slots(fr.accdoa, fr.log_distance, rt.slot_labels, rt.output_rate_hz, enc.decode)
        sources = [s for _, s in found]
        on = np.linalg.norm(fr.accdoa, axis=-1) >= enc.decode.activity_threshold  # (T, S): per slot
        base = len(rows["clip"])
        for slot, s in found:
            rows["clip"].append(ci)
            rows["label"].append(LABELS.index(s.label))
            rows["conf"].append(s.confidence)
            heard = source_hearing(yam, audio, rate, s, on[:, slot], rt.output_rate_hz, steer_method,
                                   ("label_scores", "scores", "embeddings"))
            rows["yamnet"].append(heard["label_scores"])
            rows["audioset"].append(heard["scores"].astype(np.float32))
            rows["embedding"].append(heard["embeddings"].astype(np.float32))
            rows["evidence"].append(class_evidence(fr.accdoa, rt.slot_labels, rt.labels, on[:, slot]))
        for p in match_clip(scene, sources).pairs:
            pair_row.append(base + p.pred_index)
            pair_true.append(LABELS.index(scene.sources[p.true_index].label))
            pair_real.append(scene.sources[p.true_index].extra.get("real", ""))
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    arrays.update(pair_row=np.asarray(pair_row, int), pair_true=np.asarray(pair_true, int),
                  pair_real=np.asarray(pair_real, str))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, data=data, steer=steer_method, start=start, n_scenes=len(scenes), **arrays)
    print(f"{out}: {len(scenes)} scenes, {len(arrays['label'])} sources, {len(pair_row)} matched pairs, "
          f"{time.process_time() - t0:.0f} s CPU")
    return arrays


def load(paths: list[str]) -> dict:
    """Cached .npz files of one set (consecutive scene ranges) -> one dict of arrays."""
    parts = [dict(np.load(p)) for p in paths]
    keys = [k for k in ("label", "conf", "yamnet", "pair_true", "pair_real", "evidence", "audioset", "embedding")
            if all(k in p for p in parts)]
    out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    offset, rows, clips = 0, [], []
    for k, p in enumerate(parts):
        rows.append(p["pair_row"] + offset)
        clips.append(p["clip"] + k * 1_000_000)
        offset += len(p["label"])
    out["pair_row"] = np.concatenate(rows)
    return _with_clips(out, np.concatenate(clips))


def class_accuracy(c: dict, labels: np.ndarray) -> float:
    """Class accuracy over the matched pairs, as training.eval.metrics.aggregate counts it."""
    return float(np.mean(labels[c["pair_row"]] == c["pair_true"])) if len(c["pair_row"]) else float("nan")


#: The grid: MIN_SCORE (above 1: the plain encoder) and MAX_CONFIDENCE (above 1: no gate).
MIN_SCORES = (*np.round(np.arange(0.05, 1.0001, 0.05), 2), 1.01)
MAX_CONFIDENCES = (0.8, 0.85, 0.88, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.01)


def relabel_cached(c: dict, min_score: float, max_confidence: float, distinct: bool = False) -> np.ndarray:
    """agent.localize.relabel.relabel over every cached source -> (sources,) final label indices.
    distinct: the variant not shipped, where no source takes a label another source of its clip
    holds (sources taken by YAMNet's top score, highest first; such a source keeps its own)."""
    out = np.array([LABELS.index(lab) for lab in relabel([LABELS[i] for i in c["label"]], c["conf"], c["yamnet"],
                                                          min_score, max_confidence)])
    if distinct:
        for rows in c["clips"]:
            held = list(c["label"][rows])
            for k in np.argsort(-c["yamnet"][rows].max(1), kind="stable"):
                new = out[rows[k]]
                if new != held[k] and new in held:
                    out[rows[k]] = held[k]
                held[k] = out[rows[k]]
    return out


def sweep(real: dict, synth: dict, max_drop: float = 0.01, distinct: bool = False) -> tuple[list, tuple]:
    """Every (min_score, max_confidence) of the grid -> rows (min_score, max_confidence, select_real
    accuracy, select11 accuracy), and the chosen row: the highest select_real accuracy among those
    whose select11 accuracy is at most max_drop under the plain encoder's; ties go to the rule
    that changes least (higher min_score, then lower max_confidence)."""
    plain_synth = class_accuracy(synth, synth["label"])
    rows = [(t, x, class_accuracy(real, relabel_cached(real, t, x, distinct)),
             class_accuracy(synth, relabel_cached(synth, t, x, distinct)))
            for t in MIN_SCORES for x in MAX_CONFIDENCES]
    ok = [r for r in rows if r[3] >= plain_synth - max_drop - 1e-9]
    return rows, max(ok, key=lambda r: (r[2], r[0], -r[1]))


def _with_clips(c: dict, clip: np.ndarray) -> dict:
    c["clips"] = [np.flatnonzero(clip == k) for k in np.unique(clip)]
    return c


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("cache")
    a.add_argument("--data", required=True)
    a.add_argument("--steer", default="mix")
    a.add_argument("--out", required=True)
    a.add_argument("--start", type=int, default=0)
    a.add_argument("--limit", type=int)
    b = sub.add_parser("sweep")
    b.add_argument("--real", required=True, help="select_real cache(s), comma-separated in scene order")
    b.add_argument("--synth", required=True, help="select11 cache(s), comma-separated in scene order")
    b.add_argument("--max-drop", type=float, default=0.01)
    b.add_argument("--distinct", action="store_true", help="the variant where a clip's labels stay distinct")
    args = ap.parse_args(argv)
    if args.cmd == "cache":
        cache(args.data, args.steer, args.out, args.start, args.limit)
        return
    real, synth = (load(p.split(",")) for p in (args.real, args.synth))
    rows, best = sweep(real, synth, args.max_drop, args.distinct)
    print(f"plain encoder: select_real {class_accuracy(real, real['label']):.4f} "
          f"({len(real['pair_row'])} matched sources), select11 {class_accuracy(synth, synth['label']):.4f} "
          f"({len(synth['pair_row'])})")
    for t, x, r, s in rows:
        print(f"min_score {t:.2f} max_confidence {x:.2f}: select_real {r:.4f} select11 {s:.4f}")
    print(f"chosen: min_score {best[0]:.2f} max_confidence {best[1]:.2f}: select_real {best[2]:.4f} "
          f"select11 {best[3]:.4f}")


if __name__ == "__main__":
    main()
