"""Decoder throughput: how many times real time one core decodes a 48 kHz stereo stream."""

from __future__ import annotations

import platform
import time

import numpy as np

from firmware_bridge import cobs, protocol
from firmware_bridge.emulator import DeviceEmulator
from firmware_bridge.link import BridgeLink, LinkConfig


def _stream(seconds: float, frame_samples: int, rate: int = 48_000) -> bytes:
    sig = (np.random.default_rng(0).standard_normal((int(seconds * rate), 2)) * 0.1).astype(np.float32)
    emu = DeviceEmulator(sig, rate, frame_samples)
    return b"".join(cobs.encode(protocol.encode_frame(f)) + b"\x00" for _, f in emu.frames())


def _run(stream: bytes, seconds: float, chunk: int, correct_drift: bool, crc) -> dict:
    link = BridgeLink(LinkConfig(correct_drift=correct_drift), crc=crc)
    n = 0
    t0 = time.perf_counter()
    for i in range(0, len(stream), chunk):
        for b in link.feed_bytes(stream[i:i + chunk], host_time_s=i / len(stream) * seconds):
            n += len(b.samples)
    for b in link.flush():
        n += len(b.samples)
    dt = time.perf_counter() - t0
    return {"x_realtime": round(seconds / dt, 1), "mb_per_s": round(len(stream) / dt / 1e6, 2),
            "samples": n}


def bridge_throughput(seconds: float = 60.0, chunk: int = 4096) -> dict:
    out = {"machine": f"{platform.machine()}, one thread", "seconds_of_audio": seconds, "chunk_bytes": chunk,
           "crc_backend": "crc32c (C)" if protocol.crc32c is not protocol.crc32c_py else "python"}
    for frame_samples in (48, 240):
        stream = _stream(seconds, frame_samples)
        key = f"frame_{frame_samples}"
        out[key] = {
            "decode": _run(stream, seconds, chunk, False, protocol.crc32c),
            "decode+drift_resample": _run(stream, seconds, chunk, True, protocol.crc32c),
            "decode_pure_python_crc": _run(stream, seconds, chunk, False, protocol.crc32c_py),
        }
    return out


def throughput_table(r: dict) -> str:
    lines = [f"decoder throughput, 48 kHz stereo s16, {r['seconds_of_audio']} s of audio, {r['machine']}",
             "frame (samples)  decode (x RT)  decode+resample (x RT)  pure-Python CRC (x RT)"]
    for fs in (48, 240):
        k = r[f"frame_{fs}"]
        lines.append(f"{fs:>15}  {k['decode']['x_realtime']:>13}  {k['decode+drift_resample']['x_realtime']:>22}"
                     f"  {k['decode_pure_python_crc']['x_realtime']:>22}")
    return "\n".join(lines)


def soak_table(r: dict) -> str:
    if r.get("crashed"):
        return f"soak CRASHED: {r['crashed']}"
    return "\n".join([
        f"soak: {r['seconds']:.0f} s of 48 kHz stereo s16, {r['frame_samples']}-sample frames, "
        f"byte errors {r['byte_error_rate']:.1%}, drops {r['drop_rate']:.1%}, drift {r['drift_ppm_true']} ppm "
        f"({r['wall_s']} s wall)",
        f"  crashes: 0   frames intact: {r['frames_ok']}   CRC errors: {r['crc_errors']}   "
        f"framing errors: {r['framing_errors']}",
        f"  audio frames lost: {r['audio_frames_lost']} of {r['audio_frames_sent']}   gaps reported: "
        f"{r['gaps_reported']}   lost frames outside a reported gap: {r['lost_not_in_a_gap']}",
        f"  delivered samples {r['delivered_samples']} vs device samples {r['device_samples_spanned']}: "
        f"error {r['sample_count_error']:.2e}",
        f"  drift estimate {r['drift_ppm_estimated']:.2f} ppm (true {r['drift_ppm_true']}): "
        f"error {r['drift_error_ppm']:.2f} ppm",
    ])
