"""`--source SPEC` -> a capture Source (the issue's forms; ARCHITECTURE.md "Command line").

    mic              the system's default input device
    mic:DEVICE       an input device by PortAudio index (mic:3) or part of its name (mic:pulse)
    wav:PATH         a two-channel audio file, paced to real time unless fast
    bridge:URI       a microcontroller over the firmware bridge, e.g. bridge:udp://127.0.0.1:5005
                     or bridge:serial:///dev/ttyACM0?baud=921600 (firmware_bridge.uri)
    scene:NAME       a synthesized scene: only with a `scenes` hook (the CLI's), because
                     synthesis needs training/, which the agent never imports

`fast` (the CLI's --fast) streams files and scenes as fast as they are consumed; live
sources (mic, bridge) ignore it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agent.capture.block import BLOCK_S, Source

#: The accepted forms, for every refusal.
FORMS = ("mic", "mic:DEVICE (index or part of its name)", "wav:PATH", "bridge:URI (e.g. bridge:udp://127.0.0.1:5005)",
         "scene:NAME (e.g. scene:demo)")

#: scene name -> (audio (2, T) float32, rate in Hz)
SceneHook = Callable[[str], tuple[np.ndarray, int]]


def _refuse(spec: str, problem: str):
    from agent.core.errors import BinauraError  # noqa: PLC0415

    return BinauraError(f"--source {spec!r}: {problem}; expected one of: {', '.join(FORMS)}")


def open_source(spec: str, fast: bool = False, block_s: float = BLOCK_S,
                scenes: SceneHook | None = None) -> Source:
    """Open the source `spec` names. Nothing is captured until its `blocks()` is iterated
    (a bridge binds its UDP port here). Raises BinauraError naming what was expected."""
    if not isinstance(spec, str) or not spec.strip():
        raise _refuse(str(spec), "no source given")
    scheme, sep, rest = spec.strip().partition(":")
    scheme = scheme.lower()
    if scheme == "mic":
        from agent.capture.mic import MicSource  # noqa: PLC0415  (PortAudio loads only for a mic)

        if sep and not rest.strip():
            raise _refuse(spec, "mic: names no device (drop the colon for the default device)")
        return MicSource(rest.strip() if sep else None, block_s=block_s)
    if scheme == "wav":
        from agent.capture.wav import WavSource  # noqa: PLC0415

        if not rest:
            raise _refuse(spec, "wav: names no file")
        return WavSource(rest, paced=not fast, block_s=block_s)
    if scheme == "bridge":
        from agent.capture.bridge import BridgeAudioSource  # noqa: PLC0415

        return BridgeAudioSource(spec.strip())  # the bridge's own parser reads the whole URI
    if scheme == "scene":
        from agent.capture.wav import ArraySource  # noqa: PLC0415

        if not rest:
            raise _refuse(spec, "scene: names no scene")
        if scenes is None:
            raise _refuse(spec, "a scene must be synthesized by the caller (the CLI does it; the agent "
                                "cannot import training/); pass open_source(..., scenes=HOOK) or an ArraySource")
        audio, rate_hz = scenes(rest)
        return ArraySource(audio, rate_hz, name=f"scene:{rest}", paced=not fast, block_s=block_s)
    hint = ""
    if spec.lower().endswith((".wav", ".flac", ".ogg")):
        hint = f" (a file? write wav:{spec})"
    raise _refuse(spec, f"unknown source kind {scheme!r}{hint}")
