"""Capture sources: mic (PortAudio), wav files, in-memory audio (scenes), the firmware
bridge -> timestamped PcmBlocks on one stream clock, with health counters.

Importing this package loads neither PortAudio nor the firmware bridge: a source loads what
it needs when it is created.
"""

from agent.capture.block import BLOCK_S, PcmBlock, Source, check_block_s
from agent.capture.bridge import BridgeAudioSource
from agent.capture.devices import InputDevice, input_devices, refresh_devices, resolve_input_device
from agent.capture.mic import MicSource
from agent.capture.uri import FORMS, SceneHook, open_source
from agent.capture.wav import ArraySource, WavSource

__all__ = [
    "BLOCK_S", "FORMS", "ArraySource", "BridgeAudioSource", "InputDevice", "MicSource", "PcmBlock",
    "SceneHook", "Source", "WavSource", "check_block_s", "input_devices", "open_source", "refresh_devices",
    "resolve_input_device",
]
