"""The local HTTP + WebSocket API and the live radar page of `binaura listen --serve`.

`Hub` (agent/serve/hub.py) is what the pipeline talks to; `serve` (agent/serve/server.py)
puts it on the network; access.py decides who may connect; static/ holds the page.
"""

from agent.serve.access import parse_bind
from agent.serve.hub import Hub, Subscription
from agent.serve.server import Server, serve

__all__ = ["Hub", "Server", "Subscription", "parse_bind", "serve"]
