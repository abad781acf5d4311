"""One WebSocket client of the server: events out, questions in.

Out: the hub's snapshot, then every event as its JSON (docs/events.md), plus messages for
this client only: {"type": "answer_chunk", "text"} while its question is answered and
{"type": "error", "status", "message"} when a message is refused. In: {"type": "ask",
"question"}, one question at a time per client. The frames are wsproto's (sans-IO, pure
Python); the handshake was answered by the HTTP side (agent/serve/server.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from agent.serve.hub import BusyError, Hub, QuestionError, Subscription

log = logging.getLogger(__name__)

#: A client message larger than this closes the connection (1009, "message too big").
MAX_MESSAGE_CHARS = 16 * 1024
#: A client that cannot take our writes for this long is closed: it only wastes memory.
SEND_TIMEOUT_S = 10.0
_GOING_AWAY, _UNSUPPORTED, _TOO_BIG = 1001, 1003, 1009


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


class WsSession:
    """Pumps the hub's queue for one client to its socket and answers its questions."""

    def __init__(self, hub: Hub, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 trailing: bytes = b""):
        self.hub = hub
        self._reader, self._writer = reader, writer
        self._ws = Connection(ConnectionType.SERVER, trailing_data=trailing)
        self._asking = False
        self._sub: Subscription | None = None
        self._ask_task: asyncio.Task | None = None  # kept: the loop holds tasks only weakly

    async def run(self) -> None:
        """Until the client leaves, the server closes, or the client is too slow."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        self._sub = self.hub.subscribe(lambda: loop.call_soon_threadsafe(wake.set))
        sender = asyncio.create_task(self._send_loop(wake))
        receiver = asyncio.create_task(self._recv_loop())
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.hub.unsubscribe(self._sub)
            for t in (sender, receiver):
                t.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)

    def going_away(self) -> None:
        """The server is closing: tell the client (1001) so it reconnects later."""
        self._close(_GOING_AWAY, "server closing")

    def _close(self, code: int, reason: str) -> None:
        if self._ws.state is ConnectionState.OPEN:
            self._writer.write(self._ws.send(CloseConnection(code=code, reason=reason)))
        self._writer.close()

    async def _send_loop(self, wake: asyncio.Event) -> None:
        assert self._sub is not None
        while True:
            await wake.wait()
            wake.clear()
            lines = self._sub.take()
            if self._ws.state is not ConnectionState.OPEN:
                return
            for line in lines:
                self._writer.write(self._ws.send(TextMessage(data=line)))
            try:
                await asyncio.wait_for(self._writer.drain(), SEND_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("closing a WebSocket client that took nothing for %.0f s", SEND_TIMEOUT_S)
                self._writer.close()
                return

    async def _recv_loop(self) -> None:
        parts: list[str] = []
        size = 0
        while True:
            data = await self._reader.read(65536)
            self._ws.receive_data(data or None)
            for ev in self._ws.events():
                if isinstance(ev, Ping):
                    self._writer.write(self._ws.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    if self._ws.state is ConnectionState.REMOTE_CLOSING:
                        self._writer.write(self._ws.send(ev.response()))
                    return
                elif isinstance(ev, BytesMessage):
                    self._close(_UNSUPPORTED, "send JSON text messages")
                    return
                elif isinstance(ev, TextMessage):
                    parts.append(ev.data)
                    size += len(ev.data)
                    if size > MAX_MESSAGE_CHARS:
                        self._close(_TOO_BIG, f"messages are limited to {MAX_MESSAGE_CHARS} characters")
                        return
                    if ev.message_finished:
                        self._on_message("".join(parts))
                        parts, size = [], 0
            if not data:
                return

    def _error(self, status: int, message: str) -> None:
        assert self._sub is not None
        self._sub.push(_dumps({"type": "error", "status": status, "message": message}))

    def _on_message(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self._error(400, "messages must be JSON objects")
            return
        if not isinstance(msg, dict) or msg.get("type") != "ask":
            self._error(400, 'the only message a client sends is {"type": "ask", "question": "..."}')
            return
        if self._asking:
            self._error(409, "your previous question is still being answered")
            return
        self._asking = True
        self._ask_task = asyncio.get_running_loop().create_task(self._ask(msg.get("question")))

    async def _ask(self, question: Any) -> None:
        """Chunks go straight into this client's queue from the asker's thread, so they
        come before the answer event the hub publishes at the end."""
        sub = self._sub
        assert sub is not None

        def on_chunk(text: str) -> None:
            sub.push(_dumps({"type": "answer_chunk", "text": text}))

        try:
            await asyncio.to_thread(self.hub.ask, question, on_chunk)
        except QuestionError as e:
            self._error(400, str(e))
        except BusyError as e:
            self._error(503, str(e))
        except Exception as e:  # the asker is the pipeline's code; the client still hears why
            log.exception("answering a question failed")
            self._error(500, f"answering failed: {e}")
        finally:
            self._asking = False
