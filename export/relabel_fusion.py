"""Fitting and choosing `encoder:yamnet`'s learned fusion (export.yamnet_fusion) on cached sources.

The caches come from export/relabel_sweep.py (`cache`: the plain encoder's decoded sources,
their matching to the truth, their class evidence and YAMNet's hearing). A fit set drawn from
the train side of the kit is fitted on and never scored; the selection sets (data/select_real,
data/select11) choose; the benchmark sets are never cached.

    python -m export.relabel_sweep cache --data data/fit_relabel --steer better_ear --out out/relabel/fit.npz
    python -m export.relabel_sweep cache --data data/select_real --steer better_ear --out out/relabel/real.npz
    python -m export.relabel_sweep cache --data data/select11_300 --steer better_ear --out out/relabel/s11.npz
    python -m export.relabel_fusion choose --fit out/relabel/fit.npz --real out/relabel/real.npz \
        --synth out/relabel/s11.npz --out out/relabel/yamnet_fusion.npz

The fit and the score never share a real recording: the fit set's pairs whose recording falls
in one half (`recording_half`) are fitted on, select_real's in the other half are scored (the
synthetic sources of both are kept). The rule (docs/encoder.md, "A learned fusion in place of
the AudioSet table"): over every YAMNet input x L2 strength, the highest select_real class
accuracy among the fits whose select11 class accuracy is at most 1 point under the plain
encoder's; it replaces the table rule only if it beats that rule by at least 3 points on
select_real.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
from scipy.optimize import minimize

from agent.core.labels import LABELS
from agent.localize.relabel import MAX_CONFIDENCE, MIN_SCORE
from export.relabel_sweep import class_accuracy, load, relabel_cached
from export.yamnet_fusion import INPUTS, YamnetFusion, features

#: the cache's array for each fusion input
CACHE_KEYS = {"label_scores": "yamnet", "scores": "audioset", "embedding": "embedding"}
L2_STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1)
#: select11's class accuracy may fall this much under the plain encoder's; the fusion must beat
#: the table rule by this much on select_real to replace it
MAX_DROP, MIN_GAIN = 0.01, 0.03


def fit(own: np.ndarray, evidence: np.ndarray, hearing: np.ndarray, truth: np.ndarray, kind: str, l2: float,
        labels: tuple[str, ...] = LABELS, max_iter: int = 500) -> YamnetFusion:
    """A multinomial logistic regression of the true label index (N,) on the standardised
    features of the encoder's label indices (N,), (N, C) evidence and (N, F) hearing: mean
    cross-entropy + l2/2 |W|^2 (the bias unpenalised), minimised by L-BFGS from zero."""
    x = features(own, evidence, hearing, kind)
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    z = (x - mean) / scale
    n, d = z.shape
    c = len(labels)
    y = np.zeros((n, c))
    y[np.arange(n), np.asarray(truth, int)] = 1.0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d * c].reshape(d, c), theta[d * c:]
        logits = z @ w + b
        logits -= logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        g = (np.exp(logp) - y) / n  # d loss / d logits
        value = -(y * logp).sum() / n + 0.5 * l2 * (w ** 2).sum()
        return value, np.concatenate([(z.T @ g + l2 * w).ravel(), g.sum(0)])

    res = minimize(loss, np.zeros(d * c + c), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    w, b = res.x[:d * c].reshape(d, c), res.x[d * c:]
    return YamnetFusion(tuple(labels), kind, mean, scale, w, b,
                        {"l2": l2, "fit_sources": int(n), "fit_loss": float(res.fun), "iterations": int(res.nit)})


def recording_half(ids: np.ndarray) -> np.ndarray:
    """Real recording ids ("package/NNNN") -> (N,) 0 or 1, a stable half for each (the parity of
    the first byte of its SHA-256); -1 for "" (a procedural or TTS source)."""
    return np.array([hashlib.sha256(str(i).encode()).digest()[0] % 2 if i else -1 for i in ids], int)


def keep_pairs(c: dict, halves: tuple[int, ...]) -> dict:
    """The cache with only the matched pairs whose true source is synthetic (-1) or a recording in
    one of the given halves: a fit never learns from, nor a score reads, the other half."""
    keep = np.isin(recording_half(c["pair_real"]), (-1, *halves))
    return {**c, "pair_row": c["pair_row"][keep], "pair_true": c["pair_true"][keep],
            "pair_real": c["pair_real"][keep]}


def matched(c: dict, kind: str) -> tuple[np.ndarray, ...]:
    """The matched sources of a cache: the encoder's labels, evidence, hearing of the given kind,
    true label indices."""
    rows = c["pair_row"]
    return c["label"][rows], c["evidence"][rows], c[CACHE_KEYS[kind]][rows], c["pair_true"]


def fused_labels(fusion: YamnetFusion, c: dict) -> np.ndarray:
    """(sources,) label indices the fusion gives every cached source."""
    p = fusion.probabilities(c["label"], c["evidence"], c[CACHE_KEYS[fusion.kind]])
    return np.argmax(p, axis=1)


def choose(fit_set: dict, real: dict, synth: dict) -> tuple[list[dict], dict | None, dict]:
    """Every (input, l2) fitted on fit_set and scored -> rows, the chosen row (None when no fit
    keeps select11 within MAX_DROP), and the reference rows (plain encoder, table rule)."""
    ref = {"plain": (class_accuracy(real, real["label"]), class_accuracy(synth, synth["label"])),
           "table": tuple(class_accuracy(s, relabel_cached(s, MIN_SCORE, MAX_CONFIDENCE)) for s in (real, synth))}
    rows = []
    for kind in INPUTS:
        for l2 in L2_STRENGTHS:
            fusion = fit(*matched(fit_set, kind), kind, l2)
            rows.append({"kind": kind, "l2": l2, "fusion": fusion,
                         "real": class_accuracy(real, fused_labels(fusion, real)),
                         "synth": class_accuracy(synth, fused_labels(fusion, synth)),
                         "fit": class_accuracy(fit_set, fused_labels(fusion, fit_set))})
    ok = [r for r in rows if r["synth"] >= ref["plain"][1] - MAX_DROP - 1e-9]
    return rows, (max(ok, key=lambda r: (r["real"], r["l2"])) if ok else None), ref


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("choose")
    a.add_argument("--fit", required=True, help="fit-set cache(s), comma-separated in scene order")
    a.add_argument("--real", required=True, help="select_real cache(s)")
    a.add_argument("--synth", required=True, help="select11 cache(s)")
    a.add_argument("--out", required=True, help="where the chosen fusion is written (.npz)")
    args = ap.parse_args(argv)
    fit_set, real, synth = (load(p.split(",")) for p in (args.fit, args.real, args.synth))
    fit_set, real = keep_pairs(fit_set, (0,)), keep_pairs(real, (1,))  # recordings: fit on one half, score the other
    rows, best, ref = choose(fit_set, real, synth)
    print(f"matched sources: fit {len(fit_set['pair_row'])}, select_real {len(real['pair_row'])}, "
          f"select11 {len(synth['pair_row'])}")
    for name, (r, s) in ref.items():
        print(f"{name:>6}: select_real {r:.4f} select11 {s:.4f}")
    for r in rows:
        print(f"{r['kind']:>12} l2 {r['l2']:.0e}: select_real {r['real']:.4f} select11 {r['synth']:.4f} "
              f"(fit set {r['fit']:.4f})")
    if best is None:
        print("chosen: none keeps select11 within the budget; the table rule stays")
        return
    verdict = "replaces the table rule" if best["real"] >= ref["table"][0] + MIN_GAIN else "the table rule stays"
    print(f"chosen: {best['kind']} l2 {best['l2']:.0e}: select_real {best['real']:.4f} select11 {best['synth']:.4f}: "
          f"{verdict}")
    best["fusion"].meta.update({"select_real": best["real"], "select11": best["synth"], "verdict": verdict})
    best["fusion"].save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
