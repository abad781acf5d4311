"""Check a built real-sounds kit against YAMNet: does each file sound like its class?

The package tables (training/synth/realsounds/packages.py) name each file's class from its
path and the package's pictures; nobody can listen to 2,000 files. YAMNet (AudioSet,
agent/localize/yamnet.py) can: each sound file is heard whole (band-limited files upsampled
to 16 kHz, patches every 0.48 s), each binaura label's score is its largest over the patches
(through the explicit AudioSet table), and the file gets a verdict:

- ``agrees``: its own label scores highest;
- ``heard_as``: its own label stays below OWN_MAX over every patch while another label
  reaches OTHER_MIN (YAMNet is sure it hears something else): a file to look at;
- ``unrecognised``: its own label stays below OWN_MAX and nothing else reaches OTHER_MIN
  (YAMNet has no AudioSet class for it, or the file is too short or too odd to say);
- ``weak``: the rest (its own label is heard, another one more).

A verdict is evidence, not a decision: a file leaves the kit only by an explicit ``skip``
rule in its package's table, with the reason beside it. Ambience beds are not judged.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

from agent.core.audio import resample_to
from agent.core.dataset import write_json
from agent.core.labels import LABELS
from agent.core.yamnet_features import YAMNET_SAMPLE_RATE_HZ
from training.synth.realsounds.pool import RealSounds

#: Own label below this on every patch, and another label at least OTHER_MIN: "heard as".
OWN_MAX = 0.10
OTHER_MIN = 0.50
VERDICTS = ("agrees", "weak", "unrecognised", "heard_as")


def judge(own: str, peaks: dict[str, float]) -> tuple[str, str]:
    """(verdict, the label YAMNet hears most) from each label's peak score over the patches."""
    top = max(peaks, key=peaks.__getitem__)
    if top == own:
        return "agrees", top
    if peaks.get(own, 0.0) >= OWN_MAX:
        return "weak", top
    return ("heard_as" if peaks[top] >= OTHER_MIN else "unrecognised"), top


def audit_kit(kit: RealSounds | str | os.PathLike, yamnet=None, *, ids: set[str] | None = None) -> list[dict]:
    """One row per sound file of the kit (or only `ids`): its label, verdict, the label
    YAMNet hears most, each label's peak and the file's top AudioSet classes."""
    import soundfile as sf  # noqa: PLC0415

    from agent.localize.yamnet import YamnetRuntime  # noqa: PLC0415

    kit = kit if isinstance(kit, RealSounds) else RealSounds(kit)  # a clear error for a folder that is not a kit
    yamnet = yamnet or YamnetRuntime()
    out = []
    for r in kit.entries.values():
        if r["kind"] != "sound" or (ids is not None and r["id"] not in ids):
            continue
        x, rate = sf.read(str(kit.root / r["file"]), dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if rate < YAMNET_SAMPLE_RATE_HZ:  # band-limited files: YAMNet reads 16 kHz
            x, rate = resample_to(x, rate, YAMNET_SAMPLE_RATE_HZ), YAMNET_SAMPLE_RATE_HZ
        res = yamnet(x, rate)
        peak = res.label_scores.max(axis=0)
        peaks = {lab: round(float(peak[i]), 3) for i, lab in enumerate(LABELS)}
        verdict, heard = judge(r["label"], peaks)
        top = yamnet.audioset.top_classes(res.scores.max(axis=0), k=3)
        out.append({"id": r["id"], "package": r["package"], "path": r["path"], "split": r["split"],
                    "label": r["label"], "verdict": verdict, "heard": heard, "own": peaks[r["label"]],
                    "heard_score": peaks[heard], "top_audioset": [[n, round(s, 3)] for n, s in top]})
    return out


def summarise(rows: list[dict]) -> dict:
    """Verdict counts per label and split, and the files to look at (heard_as), worst first."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        counts[f"{r['label']}/{r['split']}"][r["verdict"]] += 1
    look = sorted((r for r in rows if r["verdict"] == "heard_as"), key=lambda r: (r["own"], -r["heard_score"]))
    return {"files": len(rows), "rule": {"own_max": OWN_MAX, "other_min": OTHER_MIN},
            "verdicts": dict(Counter(r["verdict"] for r in rows)),
            "by_label": {k: {v: c[v] for v in VERDICTS} for k, c in sorted(counts.items())},
            "heard_as": look}


def write_audit(root: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Audit the kit at `root`, write rows and summary to `out` (JSON, atomically); returns the summary."""
    kit = RealSounds(root)
    rows = audit_kit(kit)
    summary = summarise(rows)
    write_json(out, {"kit": {"root": str(root), "set": kit.meta.get("set"), "files": kit.meta.get("files")},
                     **summary, "rows": rows})
    return summary
