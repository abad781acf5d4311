"""`binaura bridge dump|record|probe|emulate` and `binaura bench bridge`: bringing up a board."""

from __future__ import annotations

import json
import time

import numpy as np

from agent.core.errors import BinauraError


def _source(uri: str, correct_drift: bool = True):
    from firmware_bridge import BridgeSource, BridgeUriError  # noqa: PLC0415

    try:
        return BridgeSource(uri, correct_drift=correct_drift)
    except BridgeUriError as e:
        raise BinauraError(str(e)) from e


def cmd_dump(args) -> int:
    """Print every block (device time, samples, level, gap flag) and the counters each second."""
    src = _source(args.uri, correct_drift=False)
    next_report = time.monotonic() + 1.0
    try:
        for b in src.blocks(until_s=args.seconds):
            if b.gap:
                print(f"GAP   t={b.device_time_s:10.4f}s  {len(b.samples):6d} samples of silence")
            elif args.verbose:
                rms = 20 * np.log10(np.sqrt(np.mean(b.samples**2, axis=0)) + 1e-9)
                print(f"audio t={b.device_time_s:10.4f}s  {len(b.samples):6d} samples  "
                      f"L {rms[0]:6.1f} dBFS  R {rms[1]:6.1f} dBFS")
            if time.monotonic() >= next_report:
                next_report += 1.0
                print(json.dumps(src.health(), default=str))
    finally:
        src.close()
    print(json.dumps(src.health(), default=str))
    return 0


def cmd_record(args) -> int:
    """Record the (gap-filled, drift-corrected) stream to a wav, written atomically."""
    from agent.core.dataset import write_wav  # noqa: PLC0415

    src = _source(args.uri, correct_drift=not args.no_drift_correction)
    blocks = []
    try:
        for b in src.blocks(until_s=args.seconds):
            blocks.append(b)
    finally:
        src.close()
    if not blocks:
        raise BinauraError(f"no audio arrived from {args.uri} in {args.seconds} s; check the port/baud and "
                           "that the board is streaming (binaura bridge probe)")
    audio = np.concatenate([b.samples for b in blocks])
    rate = blocks[0].sample_rate_hz
    write_wav(args.out, audio.T, rate, args.format)
    h = src.health()
    print(f"wrote {len(audio) / rate:.2f} s ({rate} Hz) to {args.out}; gaps {h['reassembly']['gaps']}, "
          f"CRC errors {h['decoder']['crc_errors']}, drift {h['drift_ppm']} ppm")
    return 0


def cmd_probe(args) -> int:
    """Wait for the device's hello and report link quality for a few seconds."""
    src = _source(args.uri)
    n = 0
    try:
        for b in src.blocks(until_s=args.seconds):
            n += 0 if b.gap else len(b.samples)
    finally:
        src.close()
    h = src.health()
    if h["decoder"]["frames_ok"] == 0:
        raise BinauraError(f"no valid frame from {args.uri} in {args.seconds} s "
                           f"({h['decoder']['bytes_in']} bytes, {h['decoder']['crc_errors']} CRC errors)")
    print(json.dumps({"device": h["device"], "audio_seconds": n / (h["device"] or {}).get("sample_rate_hz", 48000),
                      **{k: h[k] for k in ("decoder", "reassembly", "drift_ppm", "heartbeats", "reconnects")}},
                     indent=2, default=str))
    return 0


def cmd_send(args) -> int:
    """Send START, STOP or SET_GAIN to the device."""
    from firmware_bridge.protocol import SET_GAIN, START, STOP, gain_payload  # noqa: PLC0415

    src = _source(args.uri)
    try:
        if src.uri.kind == "udp":  # learn the device's address from its stream first
            for _ in src.blocks(until_s=args.wait_s):
                if src._peer is not None:
                    break
        msg = {"start": (START, b""), "stop": (STOP, b""), "gain": (SET_GAIN, gain_payload(args.db))}[args.command]
        if not src.send(*msg):
            raise BinauraError(f"no device reachable at {args.uri} (for UDP the device must be streaming)")
    finally:
        src.close()
    print(f"sent {args.command}" + (f" {args.db:+.1f} dB" if args.command == "gain" else ""))
    return 0


def cmd_emulate(args) -> int:
    """Stream a wav as an emulated device over a pseudo-terminal or UDP, with optional faults."""
    from agent.core.dataset import read_wav  # noqa: PLC0415
    from firmware_bridge.emulator import DeviceEmulator, FaultConfig, PtyLink, UdpLink  # noqa: PLC0415

    audio, rate = read_wav(args.wav)
    emu = DeviceEmulator(audio.T, rate, args.frame_samples, drift_ppm=args.drift_ppm, loop=args.loop)
    faults = FaultConfig(byte_error_rate=args.byte_error_rate, drop_rate=args.drop_rate,
                         duplicate_rate=args.duplicate_rate, reorder_rate=args.reorder_rate, seed=args.seed)
    if args.udp:
        host, _, port = args.udp.rpartition(":")
        link = UdpLink(emu, host or "127.0.0.1", int(port), faults).start()
        print(f"streaming {args.wav} as datagrams to {args.udp}; Ctrl-C to stop", flush=True)
    else:
        link = PtyLink(emu, faults).start()
        print(f"serial port: {link.port}  (binaura bridge dump bridge:serial://{link.port})", flush=True)
    try:
        link._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()
    return 0


def cmd_bench(args) -> int:
    from firmware_bridge.bench import bridge_throughput, soak_table, throughput_table  # noqa: PLC0415
    from firmware_bridge.soak import run_soak  # noqa: PLC0415

    r = bridge_throughput(args.seconds)
    print(throughput_table(r))
    if args.soak_seconds:
        r["soak"] = run_soak(args.soak_seconds)
        print(soak_table(r["soak"]))
    if args.out:
        from agent.core.dataset import write_json  # noqa: PLC0415

        write_json(args.out, r)
    return 0


def add_parsers(sub, bench_sub) -> None:
    br = sub.add_parser("bridge", help="microcontroller audio link: dump, record, probe, emulate").add_subparsers(
        dest="bridge", required=True)
    d = br.add_parser("dump", help="print blocks, gaps and link counters")
    d.add_argument("uri", help="bridge:serial:///dev/ttyACM0?baud=921600 or bridge:udp://0.0.0.0:5005")
    d.add_argument("--seconds", type=float)
    d.add_argument("--verbose", "-v", action="store_true")
    d.set_defaults(func=cmd_dump)
    r = br.add_parser("record", help="record the stream to a wav")
    r.add_argument("uri")
    r.add_argument("--out", required=True)
    r.add_argument("--seconds", type=float, default=10.0)
    r.add_argument("--format", choices=("int16", "int24", "float32"), default="int16")
    r.add_argument("--no-drift-correction", action="store_true")
    r.set_defaults(func=cmd_record)
    p = br.add_parser("probe", help="device info and link quality")
    p.add_argument("uri")
    p.add_argument("--seconds", type=float, default=3.0)
    p.set_defaults(func=cmd_probe)
    c = br.add_parser("send", help="send a control message: start, stop, gain --db X")
    c.add_argument("uri")
    c.add_argument("command", choices=("start", "stop", "gain"))
    c.add_argument("--db", type=float, default=0.0, help="gain in dB for `gain`")
    c.add_argument("--wait-s", type=float, default=2.0, help="UDP: how long to wait for the device's stream")
    c.set_defaults(func=cmd_send)
    e = br.add_parser("emulate", help="serve a wav as an emulated device (pty or UDP)")
    e.add_argument("--wav", required=True)
    e.add_argument("--udp", help="HOST:PORT to send datagrams to (default: a pseudo-terminal)")
    e.add_argument("--frame-samples", type=int, default=48)
    e.add_argument("--drift-ppm", type=float, default=0.0)
    e.add_argument("--byte-error-rate", type=float, default=0.0)
    e.add_argument("--drop-rate", type=float, default=0.0)
    e.add_argument("--duplicate-rate", type=float, default=0.0)
    e.add_argument("--reorder-rate", type=float, default=0.0)
    e.add_argument("--loop", action="store_true")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=cmd_emulate)
    b = bench_sub.add_parser("bridge", help="link decoder throughput (x real time, one core)")
    b.add_argument("--seconds", type=float, default=60.0)
    b.add_argument("--soak-seconds", type=float, default=0.0,
                   help="also run the fault soak (1%% byte errors, 0.5%% drops, 100 ppm drift) this long")
    b.add_argument("--out")
    b.set_defaults(func=cmd_bench)
