"""HTTP/1.1 on asyncio streams with h11: one request's events, bounded bodies, and replies
that always carry the page's security headers (agent/serve/server.py routes them)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 16 * 1024
#: A kept-alive connection that sends nothing for this long is closed.
IDLE_TIMEOUT_S = 30.0
#: The page loads only its own files and talks only to its own server.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class Reply(Exception):
    """A request answered early with an error status (refused, malformed)."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status, self.headers = status, headers


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")


def error_body(status: int, message: str) -> bytes:
    return json_bytes({"error": message, "status": status})


async def next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    """The connection's next h11 event, reading as needed (asyncio.TimeoutError when idle)."""
    while True:
        ev = conn.next_event()
        if ev is not h11.NEED_DATA:
            return ev
        conn.receive_data(await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT_S))


async def read_body(conn: h11.Connection, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The request's body, refused (413) as soon as it would pass MAX_BODY_BYTES."""
    too_big = Reply(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    if int(headers.get("content-length", "0") or 0) > MAX_BODY_BYTES:
        raise too_big
    parts, n = [], 0
    while True:
        ev = await next_event(conn, reader)
        if isinstance(ev, h11.Data):
            n += len(ev.data)
            if n > MAX_BODY_BYTES:
                raise too_big
            parts.append(bytes(ev.data))
        elif isinstance(ev, h11.EndOfMessage):
            return b"".join(parts)
        else:
            raise Reply(400, "the request ended before its body")


async def send(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, body: bytes,
               headers: tuple[tuple[str, str], ...] = ()) -> None:
    """One whole response; nothing is cached and the page's CSP goes with every reply."""
    hs = dict(headers)
    hs.setdefault("content-type", "application/json")
    hs.update({"content-length": str(len(body)), "cache-control": "no-store",
               "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
               "content-security-policy": CSP})
    writer.write(conn.send(h11.Response(status_code=status, headers=list(hs.items()))))
    writer.write(conn.send(h11.Data(data=body)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
