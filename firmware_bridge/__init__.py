"""Host side of the microcontroller binaural audio link. Imports nothing from the other packages.

Protocol: firmware_bridge.protocol (spec in docs/bridge-protocol.md, C mirror in
firmware_bridge/c). Use `BridgeSource("bridge:serial:///dev/ttyACM0?baud=921600")`
or `BridgeSource("bridge:udp://127.0.0.1:5005")` (loopback; name 0.0.0.0 for every
interface, `?device=IP:PORT` to pin the device) and iterate `.blocks()`.
"""

from firmware_bridge.link import BridgeLink, LinkConfig
from firmware_bridge.reassembly import AudioBlock
from firmware_bridge.transport import BridgeSource
from firmware_bridge.uri import BridgeUriError, parse_uri

__all__ = ["AudioBlock", "BridgeLink", "BridgeSource", "BridgeUriError", "LinkConfig", "parse_uri"]
