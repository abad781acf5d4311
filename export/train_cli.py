"""`binaura train ...`: argument parsing for the training recipes (the language model's stages: lalm_cli)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.core.errors import BinauraError


def cmd_train_encoder(args) -> int:
    from training.recipes.distributed import init_distributed  # noqa: PLC0415
    from training.recipes.encoder import EncoderTrainConfig, train_encoder  # noqa: PLC0415
    from training.recipes.encoder_data import build_cache  # noqa: PLC0415

    overrides = {k: v for k, v in (("size", args.size), ("steps", args.steps), ("batch_size", args.batch_size),
                                   ("lr", args.lr), ("threads", args.threads), ("seed", args.seed),
                                   ("eval_every", args.eval_every), ("val_clips", args.val_clips),
                                   ("device", args.device), ("warmup_steps", args.warmup_steps),
                                   ("w_polar", args.w_polar), ("w_distance", args.w_distance),
                                   ("select_by", args.select_by), ("p_eq", args.p_eq),
                                   ("eq_db", args.eq_db), ("tracks", args.tracks))
                 if v is not None}
    if args.time_budget_min is not None:
        overrides["time_budget_s"] = args.time_budget_min * 60.0
    if args.no_polar_heads:
        overrides["no_polar_heads"] = tuple(h.strip() for h in args.no_polar_heads.split(",") if h.strip())
    if args.freeze:
        overrides["freeze"] = tuple(h.strip() for h in args.freeze.split(",") if h.strip())
    if args.w_keep is not None:
        overrides["w_keep"] = args.w_keep
    if args.keep_on is not None:
        overrides["keep_on"] = args.keep_on
    cfg = dataclasses.replace(EncoderTrainConfig(), **overrides).validate()
    data = Path(args.data)
    from training.models.config import BUILDERS  # noqa: PLC0415
    from training.recipes.encoder_data import default_cache_dir  # noqa: PLC0415

    model_cfg = dataclasses.replace(BUILDERS[cfg.size](), tracks=cfg.tracks).validate()
    cache = Path(args.cache) if args.cache else default_cache_dir(data, model_cfg)
    if not (data / "scenes.jsonl").exists() and not args.scenes:
        raise BinauraError(f"--data {data}: no scenes.jsonl; pass --scenes N to synthesize N training "
                           f"scenes there first")
    dist = init_distributed(cfg.device)  # under `accelerate launch`: one process of several
    with dist.main_first():  # synthesis and the feature cache: rank 0 makes them, the others then find them
        if not (data / "scenes.jsonl").exists():
            from training.synth.build import build_dataset  # noqa: PLC0415
            from training.synth.config import preset  # noqa: PLC0415

            synth = preset("train")
            if args.p_same_class is not None:
                synth = dataclasses.replace(synth, p_same_class=args.p_same_class).validate()
            build_dataset(data, synth, args.scenes, args.synth_seed, with_qa=False, workers=args.workers,
                          progress=not args.quiet)
        if not (cache / "meta.json").exists():
            build_cache(data, cache, model_cfg, workers=args.workers, progress=not args.quiet)
    best = train_encoder(cache, args.out, cfg, resume=args.resume, init=args.init, progress=not args.quiet)
    if dist.is_main:
        print(f"best checkpoint -> {best}; loss curves -> {Path(args.out) / 'loss.png'}")
    return 0


def cmd_train_average(args) -> int:
    from training.models.encoder import average_checkpoints  # noqa: PLC0415

    paths = [p.strip() for p in args.checkpoints.split(",") if p.strip()]
    for p in paths:
        if not Path(p).is_file():
            raise BinauraError(f"--checkpoints: {p} is not a file (expected encoder checkpoints, comma-separated)")
    average_checkpoints(paths, args.out)
    print(f"average of {len(paths)} checkpoints -> {args.out}")
    return 0


def add_parsers(sub) -> None:
    t = sub.add_parser("train", help="training recipes").add_subparsers(dest="train", required=True)
    e = t.add_parser("encoder", help="stage 1: train the spatial + semantic encoder on synthesized scenes")
    e.add_argument("--data", required=True, help="training dataset folder (synthesized there if --scenes is given "
                                                 "and it has no scenes.jsonl)")
    e.add_argument("--scenes", type=int, help="scenes to synthesize when --data is empty")
    e.add_argument("--synth-seed", type=int, default=1)
    e.add_argument("--cache", help="feature cache folder (default: DATA/features-SIZE)")
    e.add_argument("--out", required=True, help="run folder: last.pt, best.pt, history.json, loss.png")
    e.add_argument("--size", choices=("tiny", "small"))
    e.add_argument("--tracks", type=int, help="output tracks per class, 1-4 (default 1; > 1: multi-ACCDOA, two "
                                              "sources of one class heard apart; a one-track --init is widened)")
    e.add_argument("--p-same-class", type=float, help="when synthesizing: share of multi-source scenes in which "
                                                      "two sources share a class (default 0)")
    e.add_argument("--steps", type=int)
    e.add_argument("--batch-size", type=int, help="clips per step and process (default 32)")
    e.add_argument("--lr", type=float)
    e.add_argument("--warmup-steps", type=int)
    e.add_argument("--no-polar-heads", help="comma-separated heads without polar cues (e.g. sphere): no polar loss")
    e.add_argument("--w-polar", type=float, help="weight of the polar-angle loss (default 0.5)")
    e.add_argument("--w-distance", type=float, help="weight of the log-distance loss (default 0.1)")
    e.add_argument("--p-eq", type=float, help="share of clips given a common-mode random EQ of both ears "
                                              "(a different source spectrum or microphone; default 0)")
    e.add_argument("--eq-db", type=float, help="size of that EQ curve in dB (default 6)")
    e.add_argument("--freeze", help="comma-separated parts held still in a fine-tune (spatial, semantic, "
                                    "activity_head, lateral_head, polar_head, distance_head, class_head)")
    e.add_argument("--w-keep", type=float, help="weight of the loss holding the direction outputs on the "
                                                "--init checkpoint's (default 0: off)")
    e.add_argument("--keep-on", choices=("all", "familiar"),
                   help="clips the keep loss holds: all (default) or familiar (drawn as the init's own data was: "
                        "no real recordings, ambience, ambisonics or device effects, a head it trained on)")
    e.add_argument("--time-budget-min", type=float,
                   help="fit the step count to this many minutes of training (measured after 70 steps)")
    e.add_argument("--select-by", choices=("seld", "floors", "val_loss"),
                   help="which validation pass becomes best.pt (default seld: decoded errors; floors: the "
                        "issue's floors, each metric over its floor)")
    e.add_argument("--eval-every", type=int)
    e.add_argument("--val-clips", type=int)
    e.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto: CUDA when present")
    e.add_argument("--workers", type=int, help="processes for synthesis and features")
    e.add_argument("--seed", type=int)
    e.add_argument("--init", help="start from this checkpoint's weights (fine-tuning)")
    e.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    e.add_argument("--quiet", action="store_true", help="no progress bars (log lines only)")
    e.set_defaults(func=cmd_train_encoder)

    from export.grpo_cli import add_grpo_parser  # noqa: PLC0415
    from export.lalm_cli import add_train_parsers  # noqa: PLC0415

    add_train_parsers(t)
    add_grpo_parser(t)

    a = t.add_parser("average", help="uniform weight average of encoder checkpoints fine-tuned from one start")
    a.add_argument("--checkpoints", required=True, help="comma-separated checkpoints of one architecture (>= 2)")
    a.add_argument("--out", required=True, help="checkpoint to write (atomically)")
    a.set_defaults(func=cmd_train_average)


def cmd_export_encoder(args) -> int:
    from export.encoder_export import export_encoder  # noqa: PLC0415

    verify = []
    if args.verify_data:
        from agent.core.dataset import read_dataset  # noqa: PLC0415

        ds = read_dataset(args.verify_data)
        verify = [ds.load_audio(s) for s in ds.scenes[:args.verify_clips]]
    m = export_encoder(args.checkpoint, args.out, fp16=not args.no_fp16, verify_audio=verify, mirror_tta=args.mirror)
    for prec, rep in m["parity"].items():
        worst = max(rep["max_abs_diff"].values())
        if prec.startswith("stream"):
            print(f"stateful stream ({prec.split('_')[1]}, hops of {rep['hop_frames']} frames): max |stream - "
                  f"whole clip| = {worst:.2e} over {rep['clips']} clip(s)")
            continue
        print(f"{prec}: max |torch - onnxruntime| = {worst:.2e} over {rep['clips']} clip(s); decoded classes "
              f"agree on {rep['same_decoded_classes']}/{rep['clips']}; max direction difference "
              f"{rep['max_direction_diff_deg']:.3f} deg")
    stream = [f for d in m.get("streaming", {}).get("files", {}).values() for f in d.values()]
    print(f"exported -> {args.out} ({', '.join([*m['files'].values(), *stream])}, {MANIFEST_NAME})")
    return 0


MANIFEST_NAME = "encoder.json"


def add_export_parsers(sub) -> None:
    x = sub.add_parser("export", help="checkpoints -> deployable files").add_subparsers(dest="export", required=True)
    e = x.add_parser("encoder", help="encoder checkpoint -> ONNX fp32/fp16 + manifest, parity-checked")
    e.add_argument("--checkpoint", required=True, help="a training checkpoint (best.pt)")
    e.add_argument("--out", required=True, help="folder to write (replaced atomically)")
    e.add_argument("--no-fp16", action="store_true")
    e.add_argument("--mirror", action="store_true",
                   help="the runtime averages each window with its left-right mirror by default (twice the "
                        "compute; the model spec PATH:single turns it off), as decided on a selection set")
    e.add_argument("--verify-data", help="dataset whose first clips check torch/ONNX parity")
    e.add_argument("--verify-clips", type=int, default=8)
    e.set_defaults(func=cmd_export_encoder)

    w = x.add_parser("sound-words", help="WordNet 3.0 -> the table that names sounds the parser never learnt "
                                         "(agent/assets/sound_words.json; docs/lalm.md)")
    w.add_argument("--wordnet", help="folder of WordNet 3.0's dict files (default: Debian wordnet-base, fetched "
                                     "with apt-get download and unpacked into the cache)")
    w.add_argument("--out", help="table to write (default: the shipped agent/assets/sound_words.json)")
    w.add_argument("--quiet", action="store_true")
    w.set_defaults(func=_cmd_sound_words)

    from export.bundle_cli import add_bundle_parser  # noqa: PLC0415

    add_bundle_parser(x)


def _cmd_sound_words(args) -> int:
    from export.sound_words import main  # noqa: PLC0415

    return main(args)
