"""`binaura bridge dump|record|probe|emulate` and `binaura bench bridge`: bringing up a board."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from agent.core.errors import BinauraError

URI_HELP = ("bridge:serial:///dev/ttyACM0?baud=921600, or bridge:udp://[HOST]:PORT[?device=IP:PORT] "
            "(HOST defaults to 127.0.0.1; 0.0.0.0 listens on every interface; without device= the first "
            "sender of a valid HELLO is the one device accepted)")
MAX_GAIN_DB = 127.0  # SET_GAIN carries an int16 in 1/256 dB


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
    """Record the (gap-filled, drift-corrected) stream to a wav, streamed to disk block by block."""
    src = _source(args.uri, correct_drift=not args.no_drift_correction)
    try:
        written, rate, interrupted = record_blocks(src.blocks(until_s=args.seconds), args.out, args.format)
    finally:
        src.close()
    if not written:
        raise BinauraError(f"no audio arrived from {args.uri} in {args.seconds} s; check the port/baud and "
                           "that the board is streaming (binaura bridge probe)")
    h = src.health()
    print(f"{'interrupted: kept' if interrupted else 'wrote'} {written / rate:.2f} s ({rate} Hz) to {args.out}; "
          f"gaps {h['reassembly']['gaps']}, CRC errors {h['decoder']['crc_errors']}, "
          f"invalid frames {h['decoder']['invalid_frames'] + h['decoder']['nonfinite_frames']}, "
          f"drift {h['drift_ppm']} ppm")
    return 0


def record_blocks(blocks: Iterable, out: str | os.PathLike, sample_format: str = "int16") -> tuple[int, int, bool]:
    """Write audio blocks to a wav as they arrive; return (samples written, rate Hz, interrupted).

    Memory stays at one block whatever the length. The take goes to a temp file
    beside `out` (`.NAME.XXXXXX.partial`) that is renamed over `out` once the
    wav is closed, so nothing half-written ever carries the final name.
    Ctrl-C (KeyboardInterrupt) ends the take early: what was recorded is
    finalised as a valid wav under `out`, as a recorder's stop button would.
    Any other error removes the temp file and propagates. Nothing is created
    when no block arrives.
    """
    import soundfile as sf  # noqa: PLC0415

    from agent.core.dataset import WAV_SUBTYPES  # noqa: PLC0415

    if sample_format not in WAV_SUBTYPES:
        raise BinauraError(f"--format must be one of {list(WAV_SUBTYPES)}, got {sample_format!r}")
    out = Path(out)
    if out.is_dir():
        raise BinauraError(f"--out {out} is a folder; expected a wav file name")
    wav = tmp = None
    rate = written = 0
    interrupted = False
    try:
        try:
            for b in blocks:
                if wav is None:
                    rate, tmp = b.sample_rate_hz, _temp_beside(out)
                    wav = sf.SoundFile(str(tmp), "w", rate, b.samples.shape[1], WAV_SUBTYPES[sample_format],
                                       format="WAV")
                elif b.sample_rate_hz != rate:
                    raise BinauraError(f"the device changed its sample rate from {rate} to {b.sample_rate_hz} Hz "
                                       f"after {written / rate:.2f} s; record each rate to its own file")
                wav.write(b.samples)
                written += len(b.samples)
        except KeyboardInterrupt:
            interrupted = True
        if wav is not None:
            wav.close()
            os.replace(tmp, out)
    finally:
        if wav is not None and not wav.closed:
            wav.close()
        if tmp is not None and tmp.exists():
            tmp.unlink()
    return written, rate, interrupted


def _temp_beside(path: Path) -> Path:
    """Create a fresh, empty file beside `path` (same filesystem, so the final rename is atomic).

    O_EXCL with mode 0o666 gives the permissions a plain open() would (the umask applies).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.partial"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


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
                      **{k: h[k] for k in ("decoder", "reassembly", "drift_ppm", "heartbeats", "reconnects", "udp")
                         if k in h}},
                     indent=2, default=str))
    return 0


def cmd_send(args) -> int:
    """Send START, STOP or SET_GAIN to the device."""
    from firmware_bridge.protocol import SET_GAIN, START, STOP, gain_payload  # noqa: PLC0415

    if not -MAX_GAIN_DB <= args.db <= MAX_GAIN_DB:
        raise BinauraError(f"--db {args.db} is out of range; expected -{MAX_GAIN_DB}..{MAX_GAIN_DB} dB")
    src = _source(args.uri)
    try:
        if src.uri.kind == "udp" and src.device_address is None:  # lock onto the device by its HELLO first
            for _ in src.blocks(until_s=args.wait_s):
                if src.device_address is not None:
                    break
        msg = {"start": (START, b""), "stop": (STOP, b""), "gain": (SET_GAIN, gain_payload(args.db))}[args.command]
        if not src.send(*msg):
            raise BinauraError(f"no device reachable at {args.uri} (for UDP: no HELLO arrived in {args.wait_s} s; "
                               "name the device with ?device=IP:PORT or let it stream first)")
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
    d.add_argument("uri", help=URI_HELP)
    d.add_argument("--seconds", type=float)
    d.add_argument("--verbose", "-v", action="store_true")
    d.set_defaults(func=cmd_dump)
    r = br.add_parser("record", help="record the stream to a wav")
    r.add_argument("uri", help=URI_HELP)
    r.add_argument("--out", required=True, help="wav, streamed to .NAME.*.partial beside it and renamed at the end; "
                   "Ctrl-C keeps what was recorded")
    r.add_argument("--seconds", type=float, default=10.0)
    r.add_argument("--format", choices=("int16", "int24", "float32"), default="int16")
    r.add_argument("--no-drift-correction", action="store_true")
    r.set_defaults(func=cmd_record)
    p = br.add_parser("probe", help="device info and link quality")
    p.add_argument("uri", help=URI_HELP)
    p.add_argument("--seconds", type=float, default=3.0)
    p.set_defaults(func=cmd_probe)
    c = br.add_parser("send", help="send a control message: start, stop, gain --db X")
    c.add_argument("uri", help=URI_HELP)
    c.add_argument("command", choices=("start", "stop", "gain"))
    c.add_argument("--db", type=float, default=0.0, help="gain in dB for `gain`")
    c.add_argument("--wait-s", type=float, default=3.0,
                   help="UDP without device=: how long to wait for the device's HELLO (it repeats every few s)")
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
