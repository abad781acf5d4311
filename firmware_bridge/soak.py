"""Soak run: an emulated device through a faulty link, checked against the emulator's truth."""

from __future__ import annotations

import time

import numpy as np

from firmware_bridge.emulator import DeviceEmulator, FaultConfig, SentFrame, simulate
from firmware_bridge.link import BridgeLink, LinkConfig
from firmware_bridge.protocol import AUDIO
from firmware_bridge.reassembly import AudioBlock


def run_link(emu: DeviceEmulator, faults: FaultConfig, stream: bool = True, jitter: int = 0,
             correct_drift: bool = False) -> tuple[BridgeLink, list[AudioBlock], list[SentFrame]]:
    link = BridgeLink(LinkConfig(jitter_frames=jitter, correct_drift=correct_drift), datagrams=not stream)
    feed = link.feed_bytes if stream else link.feed_datagram
    blocks, sent = [], []
    for s in simulate(emu, faults, stream=stream):
        sent.append(s)
        if s.raw:
            blocks += feed(s.raw, s.host_time_s)
    return link, blocks + link.flush(), sent


def check_gaps(blocks: list[AudioBlock], sent: list[SentFrame], rate: int) -> dict:
    """Compare what the host delivered with what the device sent.

    Returns counts: audio frames sent / received intact, lost frames not covered
    by a reported gap (must be 0), delivered samples vs device samples spanned.
    """
    got = {round(b.device_time_s * rate) for b in blocks if not b.gap}
    gaps = sorted((round(b.device_time_s * rate), len(b.samples)) for b in blocks if b.gap)
    starts = np.array([g[0] for g in gaps]) if gaps else np.zeros(0, dtype=int)
    audio = [s.frame for s in sent if s.frame is not None and s.frame.type == AUDIO]
    real = [b for b in blocks if not b.gap]
    first = min(round(b.device_time_s * rate) for b in blocks)
    last_end = max(round(b.device_time_s * rate) + len(b.samples) for b in real)
    uncovered = lost = 0
    for f in audio:
        start = round(f.timestamp_us * rate / 1e6)
        if start in got or start >= last_end or start < first:
            continue
        lost += 1
        i = int(np.searchsorted(starts, start, side="right")) - 1
        if not (i >= 0 and gaps[i][0] <= start and start + f.n_samples <= gaps[i][0] + gaps[i][1]):
            uncovered += 1
    return {"audio_frames_sent": len(audio), "audio_frames_lost": lost, "lost_not_in_a_gap": uncovered,
            "gaps_reported": len(gaps), "delivered_samples": int(sum(len(b.samples) for b in blocks)),
            "device_samples_spanned": int(last_end - first)}


def run_soak(seconds: float = 600.0, byte_error_rate: float = 0.01, drop_rate: float = 0.005,
             drift_ppm: float = 100.0, frame_samples: int = 48, rate: int = 48_000, seed: int = 11) -> dict:
    x = (np.random.default_rng(seed).uniform(-0.5, 0.5, (int(seconds * rate), 2))).astype(np.float32)
    emu = DeviceEmulator(x, rate, frame_samples, drift_ppm=drift_ppm)
    faults = FaultConfig(byte_error_rate=byte_error_rate, drop_rate=drop_rate, jitter_s=0.0005, seed=seed)
    t0 = time.perf_counter()
    crashed = None
    try:
        link, blocks, sent = run_link(emu, faults)
    except Exception as e:  # a soak reports a crash instead of dying with it
        crashed = repr(e)
        return {"crashed": crashed}
    r = check_gaps(blocks, sent, rate)
    h = link.health()
    r.update({
        "crashed": crashed, "seconds": seconds, "wall_s": round(time.perf_counter() - t0, 1),
        "byte_error_rate": byte_error_rate, "drop_rate": drop_rate, "frame_samples": frame_samples,
        "sample_count_error": abs(r["delivered_samples"] - r["device_samples_spanned"]) / r["device_samples_spanned"],
        "drift_ppm_true": drift_ppm, "drift_ppm_estimated": h.drift_ppm,
        "drift_error_ppm": None if h.drift_ppm is None else abs(h.drift_ppm - drift_ppm),
        "crc_errors": h.decoder["crc_errors"], "framing_errors": h.decoder["framing_errors"],
        "frames_ok": h.decoder["frames_ok"],
    })
    return r
