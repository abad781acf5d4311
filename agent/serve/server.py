"""The local HTTP + WebSocket API of `binaura listen --serve [HOST:]PORT [--token T]`.

Routes: GET / (the radar page and its two files), GET /api/state (the hub's snapshot),
POST /api/ask {"question"} (blocks until answered; the answer event's JSON), POST /api/orientation
(head-orientation samples, with `binaura listen --orientation api`; Hub.orient), GET /ws
(WebSocket: agent/serve/ws.py). HTTP/1.1 is parsed by h11 and WebSocket frames by wsproto:
small, pure-Python, sans-IO libraries on asyncio streams. (`websockets` parses only GET
requests, and aiohttp brings seven compiled dependencies to an edge device.)

The server runs in its own thread with its own event loop, so the pipeline's threads only
ever touch the hub. Every request passes agent/serve/access.py first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import html
import json
import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import h11

from agent.core.errors import BinauraError
from agent.serve import access
from agent.serve.httpio import (
    MAX_HEADER_BYTES,
    Reply,
    error_body,
    json_bytes,
    next_event,
    read_body,
    send,
)
from agent.serve.hub import BusyError, Hub, OrientationOffError, QuestionError
from agent.serve.ws import WsSession

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/index.html": ("index.html", "text/html; charset=utf-8"),
           "/radar.js": ("radar.js", "text/javascript; charset=utf-8"),
           "/style.css": ("style.css", "text/css; charset=utf-8")}
MAX_CONNECTIONS = 64


class Server:
    """A running server (returned by `serve`): .url, .page_url, .close(); a context manager."""

    def __init__(self, hub: Hub, host: str, port: int, token: str | None):
        self.hub, self.host, self.token = hub, host, token
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._sessions: set[WsSession] = set()
        self._files = {path: (_page(STATIC_DIR / name, token) if name == "index.html"
                              else (STATIC_DIR / name).read_bytes(), ctype)
                       for path, (name, ctype) in _STATIC.items()}

    @property
    def url(self) -> str:
        """http://HOST:PORT/ of the page (without the token)."""
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}/"

    @property
    def page_url(self) -> str:
        """The URL to open in a browser: .url with ?token=T when a token is set."""
        return self.url + (f"?token={quote(self.token, safe='')}" if self.token else "")

    def _start(self) -> None:
        """Bind and start serving in the server's own thread (the caller may itself be inside
        a running event loop, where this loop could not be run); wait for the bind's result."""
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="binaura-serve",
                                        daemon=True)
        self._thread.start()
        try:
            started.result()
        except OSError as e:
            self._thread.join()
            if e.errno == errno.EADDRINUSE:
                raise BinauraError(f"cannot serve on {self.host}:{self.port}: port {self.port} is "
                                   "already in use (another binaura listen?); pick another with "
                                   "--serve PORT") from None
            raise BinauraError(f"cannot serve on {self.host}:{self.port}: {e.strerror or e}") from None

    def _run(self, started: concurrent.futures.Future) -> None:
        asyncio.set_event_loop(self._loop)
        bind = "127.0.0.1" if self.host.lower() == "localhost" else self.host
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._connection, bind, self.port, limit=MAX_HEADER_BYTES))
        except Exception as e:  # reported to the caller of serve(), who is waiting for it
            self._loop.close()
            started.set_exception(e)
            return
        self.port = self._server.sockets[0].getsockname()[1]
        started.set_result(None)
        self._loop.run_forever()
        self._loop.close()

    def close(self, timeout_s: float = 5.0) -> None:
        """Tell WebSocket clients we are going (1001), drop connections, stop the thread."""
        if self._thread is None or not self._thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(timeout_s)
        except Exception:  # close must not raise: it runs on the way out
            log.exception("closing the API server")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for s in list(self._sessions):
            s.going_away()
        for _ in range(3):  # a handler may await again after its first cancellation: cancel again
            pending = [t for t in self._tasks if not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=0.5)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 1.0)
        except asyncio.TimeoutError:
            log.warning("closing the API server: connections still open after 1 s")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # One TCP connection: HTTP/1.1 requests (kept alive), or one upgrade to a WebSocket.
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        try:
            if len(self._tasks) > MAX_CONNECTIONS:
                return  # closed unanswered: h11 may not reply before a request, and none is read
            while True:
                req = await next_event(conn, reader)
                if not isinstance(req, h11.Request):
                    return
                if await self._request(conn, req, reader, writer):
                    return  # became a WebSocket, now finished
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    return
        except Reply as r:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await send(conn, writer, r.status, error_body(r.status, str(r)), r.headers)
        except h11.RemoteProtocolError as e:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await send(conn, writer, e.error_status_hint, error_body(e.error_status_hint, str(e)))
        except (asyncio.TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # the server is closing; ending normally keeps asyncio's stream callback quiet
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _request(self, conn: h11.Connection, req: h11.Request,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True when it became a WebSocket session (now over)."""
        method = req.method.decode("ascii", "replace")
        target = req.target.decode("latin-1")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in req.headers}
        path = urlsplit(target).path
        if not access.host_ok(headers.get("host"), self.host, self.token):
            raise Reply(403, "unexpected Host header (DNS rebinding guard); open the page by 127.0.0.1")
        if not access.token_ok(self.token, access.request_token(target, headers)):
            raise Reply(401, "this server needs its token: ?token=T or Authorization: Bearer T",
                         (("www-authenticate", 'Bearer realm="binaura"'),))
        if path == "/ws":
            if method != "GET" or "websocket" not in headers.get("upgrade", "").lower():
                raise Reply(426, "/ws is a WebSocket endpoint", (("upgrade", "websocket"),))
            if not access.origin_ok(headers.get("origin"), headers.get("host")):
                raise Reply(403, "WebSocket from another site refused")
            await self._websocket(conn, headers, reader, writer)
            return True
        if path in self._files or path == "/api/state":
            if method != "GET":
                raise Reply(405, f"{path} takes GET", (("allow", "GET"),))
            body, ctype = self._files.get(path) or (json_bytes(self.hub.snapshot()), "application/json")
            await send(conn, writer, 200, body, (("content-type", ctype),))
        elif path == "/api/ask":
            if method != "POST":
                raise Reply(405, "/api/ask takes POST", (("allow", "POST"),))
            if not access.origin_ok(headers.get("origin"), headers.get("host")):
                raise Reply(403, "a question from another site refused")
            status, answer = await self._ask(conn, headers, reader)
            await send(conn, writer, status, json_bytes(answer), (("content-type", "application/json"),))
        elif path == "/api/orientation":
            if method != "POST":
                raise Reply(405, "/api/orientation takes POST", (("allow", "POST"),))
            if not access.origin_ok(headers.get("origin"), headers.get("host")):
                raise Reply(403, "an orientation update from another site refused")
            result = await self._orient(conn, headers, reader)
            await send(conn, writer, 200, json_bytes(result), (("content-type", "application/json"),))
        else:
            raise Reply(404, f"no such page: {path}")
        return False

    async def _ask(self, conn: h11.Connection, headers: dict[str, str],
                   reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        # JSON only: a cross-site form cannot send it without a CORS preflight, which we never allow.
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise Reply(415, 'send {"question": "..."} as application/json')
        body = await read_body(conn, reader, headers)
        try:
            question = json.loads(body.decode("utf-8"))["question"]
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise Reply(400, 'the body must be {"question": "..."}') from None
        try:
            event = await asyncio.to_thread(self.hub.ask, question)
        except QuestionError as e:
            raise Reply(400, str(e)) from None
        except BusyError as e:
            raise Reply(503, str(e)) from None
        except Exception as e:  # the asker is the pipeline's code; say it failed, keep serving
            log.exception("answering a question failed")
            raise Reply(500, f"answering failed: {e}") from None
        return 200, event.to_json()

    async def _orient(self, conn: h11.Connection, headers: dict[str, str],
                      reader: asyncio.StreamReader) -> dict[str, Any]:
        form = '{"t_s": 1.5, "yaw_deg": 40} or {"t_s": 1.5, "quaternion": [w, x, y, z]}, or a list of them'
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise Reply(415, f"send {form} as application/json")
        body = await read_body(conn, reader, headers)
        try:
            obj = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise Reply(400, f"the body must be JSON: {form}") from None
        try:
            return self.hub.orient(obj)
        except OrientationOffError as e:
            raise Reply(409, str(e)) from None
        except QuestionError as e:
            raise Reply(400, str(e)) from None

    async def _websocket(self, conn: h11.Connection, headers: dict[str, str],
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from wsproto.utilities import generate_accept_token  # noqa: PLC0415

        key = headers.get("sec-websocket-key")
        if headers.get("sec-websocket-version") != "13" or not key:
            raise Reply(400, "a WebSocket request needs Sec-WebSocket-Version 13 and a key",
                         (("sec-websocket-version", "13"),))
        while not isinstance(ev := await next_event(conn, reader), h11.EndOfMessage):
            if not isinstance(ev, h11.Data):
                return
        writer.write(conn.send(h11.InformationalResponse(status_code=101, headers=[
            ("upgrade", "websocket"), ("connection", "Upgrade"),
            ("sec-websocket-accept", generate_accept_token(key.encode("latin-1")))])))
        session = WsSession(self.hub, reader, writer, conn.trailing_data[0])
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)


def serve(hub: Hub, host: str = access.DEFAULT_HOST, port: int = access.DEFAULT_PORT,
          token: str | None = None) -> Server:
    """Start the API for `hub` on host:port in a background thread and return at once.

    Raises BinauraError when the bind is not allowed (another address than the loopback
    without a token), the port is in use, or the address cannot be bound. port 0 picks a
    free port (see .port, .url)."""
    access.check_port(port)
    access.check_bind(host, token)
    server = Server(hub, host, int(port), token)
    server._start()
    return server


def _page(path: Path, token: str | None) -> bytes:
    """index.html, with the token added to its two file links: every request must carry it."""
    text = path.read_text(encoding="utf-8")
    if token:
        q = html.escape(quote(token, safe=""), quote=True)
        for name in ("radar.js", "style.css"):
            text = text.replace(f'"{name}"', f'"{name}?token={q}"')
    return text.encode("utf-8")
