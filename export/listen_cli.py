"""`binaura listen`: the streaming agent's command line. It parses arguments, builds the parts
(source, encoder, pipeline, narrator, answerer, outputs, server) and hands them to
agent/run.py; everything that listens lives in the agent package (no torch there).

    binaura listen --source mic[:DEV]|wav:PATH|scene:demo[:SEED]|bridge:URI [--fast] [--duration S]
                   [--events FILE.jsonl | --events -] [--serve [HOST:]PORT [--token T]]
                   [--ask "question"] [--voice] [--speak] [--summary]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from agent.core.errors import BinauraError

NARRATION_STYLES = ("words", "clock", "degrees", "off")


def scene_source(spec: str, fast: bool, out: Path | None = None):
    """`scene:demo[:SEED]`: a synthesized scene with known sources (the synthesizer lives in
    training/, so the CLI renders it and hands the agent the audio)."""
    from agent.capture import ArraySource  # noqa: PLC0415
    from agent.core.dataset import read_dataset  # noqa: PLC0415
    from training.synth.build import build_dataset  # noqa: PLC0415
    from training.synth.config import preset  # noqa: PLC0415

    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[1] != "demo":
        raise BinauraError(f"--source {spec!r}: expected scene:demo or scene:demo:SEED")
    try:
        seed = int(parts[2]) if len(parts) == 3 else 7
    except ValueError as e:
        raise BinauraError(f"--source {spec!r}: the seed must be an integer") from e
    folder = out or Path(tempfile.mkdtemp(prefix="binaura-scene-"))
    build_dataset(folder, preset("demo"), 1, seed, workers=1, progress=False)
    ds = read_dataset(folder)
    scene = ds.scenes[0]
    audio, rate = ds.load_audio(scene)
    src = ArraySource(audio, rate, name=f"scene:demo:{seed}", paced=not fast)
    return src, scene


def bridge_orientation(source, spec: str):
    """--orientation bridge: the ORIENTATION frames of a bridge device (docs/bridge-protocol.md),
    placed on the stream clock by the source, into an OrientationInput (which refuses, holds
    and falls back as for any input). Its "future" is measured from the audio delivered."""
    from agent.capture.bridge import BridgeAudioSource  # noqa: PLC0415

    if not isinstance(source, BridgeAudioSource):
        raise BinauraError(f"--orientation bridge reads the head's orientation from the firmware bridge: --source "
                           f"must be bridge:URI (e.g. bridge:udp://127.0.0.1:5005), got {spec!r}")
    return source.orientation_input()


def tracker_config(spec: str | None):
    """--tracker KEY=VALUE,...: TrackerConfig fields (agent/track/tracker.py) over the live
    agent's settings (agent.pipeline.LIVE_TRACKER), e.g. hold_s=1,confirm_hits=3."""
    from agent.pipeline import LIVE_TRACKER  # noqa: PLC0415
    from agent.track.tracker import TrackerConfig  # noqa: PLC0415

    d = dict(LIVE_TRACKER)
    if not spec:
        return TrackerConfig.from_dict(d)
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise BinauraError(f"--tracker {spec!r}: expected KEY=VALUE[,KEY=VALUE...], e.g. hold_s=2")
        try:
            d[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError as e:
            raise BinauraError(f"--tracker {spec!r}: {key} needs a number, got {value!r}") from e
    return TrackerConfig.from_dict(d)


def make_answerer(model: str | None):
    """--model: tracks (no language model), or a language-model folder (torch, for now)."""
    from agent.answer.tracks import TrackAnswerer  # noqa: PLC0415

    if model in (None, "tracks"):
        return TrackAnswerer(), "tracks (rule-based, no language model)"
    if model.startswith("bundle:"):  # the edge bundle: no torch (docs/bundle.md)
        from agent.answer.bundle_answerer import LiveBundleAnswerer, parse_model_name  # noqa: PLC0415
        from export.bundle_setup import resolve_bundle  # noqa: PLC0415

        folder, precision = parse_model_name(model)
        live = LiveBundleAnswerer(resolve_bundle(folder), TrackAnswerer(), precision=precision, threads=2)
        return live, f"program-aided language model, {live.name} (ONNX Runtime), on the tracks"
    from export.lalm_cli import model_folder  # noqa: PLC0415

    folder = model_folder(model)
    if folder is None:
        raise BinauraError(f"--model {model!r}: expected 'tracks' or a language-model folder (RUN/model)")
    from export.lalm_cli import is_program_model  # noqa: PLC0415

    if is_program_model(folder):
        from training.eval.program_answerer import LiveProgramAnswerer  # noqa: PLC0415

        return (LiveProgramAnswerer(folder, TrackAnswerer()),
                f"program-aided language model {folder} (torch), on the tracks")
    from training.eval.live_lalm import LiveLalmAnswerer  # noqa: PLC0415

    return LiveLalmAnswerer(folder), f"language model {folder} (torch)"


def cmd_listen(args) -> int:
    from agent.capture import open_source  # noqa: PLC0415
    from agent.console import ConsoleSink, summarize  # noqa: PLC0415
    from agent.localize.encoder import EncoderRuntime  # noqa: PLC0415
    from agent.pipeline import Pipeline, PipelineConfig  # noqa: PLC0415
    from agent.run import Outputs, Runner, start_repl  # noqa: PLC0415
    from agent.track.events import EventWriter  # noqa: PLC0415

    if args.duration is not None and not args.duration > 0:
        raise BinauraError(f"--duration must be > 0 seconds, got {args.duration}")
    if args.orientation == "api" and not args.serve:
        raise BinauraError("--orientation api takes updates by POST /api/orientation: give --serve [HOST:]PORT too")
    runtime = EncoderRuntime(args.encoder, threads=args.threads)  # a missing/corrupt model fails here
    scene = None
    if args.source.startswith("scene:"):
        source, scene = scene_source(args.source, args.fast)
    else:
        source = open_source(args.source, fast=args.fast)
    narrator = None
    if args.narration != "off":
        from agent.narrate import NarrationConfig, Narrator  # noqa: PLC0415

        narrator = Narrator(NarrationConfig(style=args.narration))
    answerer, answerer_name = make_answerer(args.model)
    to_stdout = args.events == "-"
    console_out = sys.stderr if to_stdout else sys.stdout
    sinks = [] if args.quiet else [ConsoleSink(console_out, verbose=args.verbose)]
    if args.events:
        sinks.append(EventWriter(sys.stdout if to_stdout else args.events))
    speaker = None
    if args.speak:
        from agent.narrate import Speaker  # noqa: PLC0415

        speaker = Speaker()
        sinks.append(_SpeakSink(speaker))
    server = hub = None
    if args.serve:
        from agent.serve import Hub, parse_bind, serve  # noqa: PLC0415

        hub = Hub()
        host, port_n = parse_bind(args.serve)
        server = serve(hub, host=host, port=port_n, token=args.token)
        sinks.append(hub)
    outputs = Outputs(sinks)
    orientation = None
    if args.orientation in ("stdin", "api"):  # JSON {"t_s": .., "yaw_deg": ..} or {"t_s": .., "quaternion": [w, x, y, z]}
        from agent.track.orientation import OrientationInput  # noqa: PLC0415

        # "from the future" is judged against the audio delivered, which the frames trail by the
        # encoder's window: samples stamped now (stream_t) are not from the future
        orientation = OrientationInput(clock=lambda: pipeline.stream_t)
    elif args.orientation == "bridge":  # the device's ORIENTATION frames, placed on its audio's clock
        orientation = bridge_orientation(source, args.source)
    pipeline = Pipeline(runtime, PipelineConfig(hop_frames=args.hop_frames, tracker=tracker_config(args.tracker)),
                        orientation=orientation,
                        narrator=narrator)
    runner = Runner(source, pipeline, outputs, answerer=answerer, duration_s=args.duration)
    if hub is not None:
        hub.set_asker(lambda q: runner.ask_stream(q, exclude=hub),  # the hub publishes its own answers
                      cues=lambda: pipeline.cues)
        if args.orientation == "api":  # POST /api/orientation; samples without t_s take the stream clock
            hub.set_orientation(orientation, lambda: pipeline.stream_t)
    print(f"binaura listen: {source.describe()}; encoder {runtime.root.name} ({runtime.precision}); "
          f"answers: {answerer_name}" + (f"; page {server.page_url}" if server is not None else ""), file=console_out)
    voice = None
    if args.voice:
        from agent.voice.worker import VoiceWorker  # noqa: PLC0415 - loads the VAD and the recogniser

        voice = VoiceWorker(on_question=runner.ask)
        runner.taps.append(voice)
    if args.orientation == "stdin":
        orientation.follow(sys.stdin, lambda: pipeline.stream_t)
    elif args.interactive or (source.live and sys.stdin.isatty()):  # a person at a terminal may type questions
        start_repl(runner, sys.stdin, lambda s: (console_out.write(s), console_out.flush()))
    try:
        runner.run()
        if voice is not None:
            voice.close()  # a question spoken at the very end is still answered
            outputs.emit([pipeline.health(pipeline.stream_t)])  # with the recogniser's final counters
        if args.ask:
            for q in args.ask:
                runner.ask(q)
    finally:
        outputs.close()
        if server is not None:
            server.close()
        if speaker is not None:
            speaker.close()
    if args.summary:
        print(summarize(outputs.log, pipeline.counters["audio_s"]), file=console_out)
        if scene is not None:
            print("truth: " + "; ".join(f"{s.label} {s.azimuth_deg:+.0f} deg, {s.distance_m:.1f} m, "
                                        f"{s.onset_s:.1f}-{s.offset_s:.1f} s" for s in scene.sources),
                  file=console_out)
    return 0


class _SpeakSink:
    def __init__(self, speaker):
        self.speaker = speaker

    def write(self, e) -> None:
        if e.type in ("narration", "answer"):
            self.speaker.say(e.text)


def add_listen_parser(sub) -> None:
    s = sub.add_parser("listen", help="the streaming agent: capture, track, narrate, answer (JSON events, "
                                      "a live page)")
    s.add_argument("--source", required=True,
                   help="mic[:DEVICE] (name or index) | wav:PATH | scene:demo[:SEED] | bridge:URI")
    s.add_argument("--fast", action="store_true", help="files and scenes as fast as possible, not at real time")
    s.add_argument("--duration", type=float, help="stop after this many seconds of audio")
    s.add_argument("--events", help="JSON Lines events (schema binaura-events-1, docs/events.md) to FILE, "
                                    "or - for stdout (the console then goes to stderr)")
    s.add_argument("--serve", help="[HOST:]PORT: the HTTP + WebSocket API and the radar page "
                                   "(127.0.0.1 unless HOST is given; another address needs --token)")
    s.add_argument("--token", help="the API token (required when --serve binds beyond 127.0.0.1)")
    s.add_argument("--ask", action="append", help="a question answered when the stream ends (repeatable)")
    s.add_argument("--interactive", action="store_true", help="typed questions from stdin while listening "
                                                              "(on by itself for a live source at a terminal)")
    s.add_argument("--voice", action="store_true", help="spoken questions (VAD + offline speech recognition)")
    s.add_argument("--speak", action="store_true", help="speak narration and answers (espeak-ng)")
    s.add_argument("--summary", action="store_true", help="print what was heard where and when at the end")
    s.add_argument("--narration", choices=NARRATION_STYLES, default="words",
                   help="how narration says where: words, clock (9 o'clock), degrees; off")
    s.add_argument("--model", help="the answerer: tracks (default; no language model), a language-model "
                                   "folder (torch), or bundle:DIR[:int4|fp32] (the edge bundle, no torch; bundle:default: "
                                   "the one set-up builds)")
    s.add_argument("--encoder", help="exported encoder folder (default: the shipped one)")
    s.add_argument("--hop-frames", type=int, default=1, help="encoder frames per hop (0.1 s each)")
    s.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the encoder")
    s.add_argument("--tracker", help="tracker settings KEY=VALUE,... (agent/track/tracker.py TrackerConfig)")
    s.add_argument("--orientation", choices=("none", "stdin", "api", "bridge"), default="none",
                   help="head orientation for world-frame tracks that resolve front from back (docs/turning.md): "
                        'stdin reads JSON lines {"t_s": 1.5, "yaw_deg": 40} or {"t_s": .., "quaternion": [w, x, y, z]} '
                        "(then no typed questions); api takes the same objects (or a list) by POST /api/orientation "
                        "(needs --serve); bridge takes the quaternions a bridge:URI device sends beside its audio "
                        "(docs/bridge-protocol.md)")
    s.add_argument("--verbose", action="store_true", help="also updates and health on the console")
    s.add_argument("--quiet", action="store_true", help="no console lines (events and summary only)")
    s.set_defaults(func=cmd_listen)


def cmd_bench_agent(args) -> int:
    from agent.core.dataset import read_dataset, write_json  # noqa: PLC0415
    from export.agent_bench import bench_agent, realtime_run, soak_run  # noqa: PLC0415

    ds = read_dataset(args.data)
    answerer = make_answerer(args.model)[0] if args.model else None
    result = bench_agent(ds, args.scenes, args.encoder, args.hop_frames, answerer, progress=not args.quiet,
                         tracker=tracker_config(args.tracker))
    if args.realtime_s or args.soak_s:
        import numpy as np  # noqa: PLC0415

        clips, rate = [], None
        for scene in ds.scenes[:40]:
            audio, rate = ds.load_audio(scene)
            clips.append(audio)
        audio = np.concatenate(clips, axis=-1)
        if args.realtime_s:
            reps = int(np.ceil(args.realtime_s * rate / audio.shape[-1]))
            long = np.tile(audio, (1, reps))[:, :int(args.realtime_s * rate)]
            result["realtime"] = realtime_run(long, rate, args.encoder, args.hop_frames)
        if args.soak_s:
            result["soak"] = soak_run(audio, rate, args.soak_s, args.encoder, args.hop_frames)
    print(agent_table(result))
    if args.out:
        write_json(args.out, result)
        print(f"metrics -> {args.out}")
    return 0


def agent_table(r: dict) -> str:
    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    lines = [f"bench agent: {r['scenes']} scenes, {r['sources']} sources, hop {r['hop_frames']} frames",
             "| metric | tracker | raw detections |", "|---|---|---|",
             f"| active time within 20 deg (same class) | {r['coverage_20deg']:.3f} | {r['raw_coverage_20deg']:.3f} |",
             f"| id switches per source-minute | {r['id_switches_per_source_minute']:.3f} | |",
             f"| sources with an onset event | {r['onset_found']:.3f} | |",
             f"| capture-to-onset latency p50 / p95 | {f(r['onset_latency_p50_s'], '.3f')} / "
             f"{f(r['onset_latency_p95_s'], '.3f')} s | |",
             f"| pipeline real-time factor (one thread) | {r['realtime_factor']:.1f}x | |"]
    if r.get("first_token_p95_s") is not None:
        lines.append(f"| question-to-first-token p95 ({r['answerer']}) | {r['first_token_p95_s']:.3f} s | |")
    if "realtime" in r:
        rt = r["realtime"]
        lines.append(f"| {rt['seconds'] / 60:.0f} min at real time: overflows / CPU of one core | "
                     f"{rt['overflows']} / {100 * rt['cpu_share_of_one_core']:.0f}% | |")
    if "soak" in r:
        s = r["soak"]
        lines.append(f"| {s['seconds'] / 60:.0f} min replay: RSS first / last / trend | {f(s['rss_first_mb'], '.0f')} / "
                     f"{f(s['rss_last_mb'], '.0f')} MB / {f(s['trend_mb_per_hour'], '+.1f')} MB per hour | |")
    return "\n".join(lines)


def add_bench_agent_parser(b) -> None:
    a = b.add_parser("agent", help="the live agent replayed on benchmark scenes: tracks, latency, real time")
    a.add_argument("--data", required=True, help="benchmark dataset (scenes with 1-3 sources are used)")
    a.add_argument("--scenes", type=int, default=100)
    a.add_argument("--encoder", help="exported encoder folder (default: the shipped one)")
    a.add_argument("--hop-frames", type=int, default=1)
    a.add_argument("--tracker", help="tracker settings KEY=VALUE,... (TrackerConfig), e.g. hold_s=2")
    a.add_argument("--model", help="also time questions: tracks or a language-model folder")
    a.add_argument("--realtime-s", type=float, default=0.0, help="also run this many seconds paced at real time")
    a.add_argument("--soak-s", type=float, default=0.0, help="also replay this many seconds fast for memory")
    a.add_argument("--out", help="metrics JSON")
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=cmd_bench_agent)
