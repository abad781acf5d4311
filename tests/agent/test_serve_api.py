"""The HTTP + WebSocket API without a browser: state, tokens, the bind policy, questions."""

import json
import socket
import time
import urllib.error
import urllib.request
from collections import deque

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request, TextMessage

from agent.core.errors import BinauraError
from agent.serve import Hub, parse_bind, serve
from agent.track.events import NarrationEvent, OffsetEvent, OnsetEvent, check_event

TOKEN = "s3cret-token_42"


def onset(tid, label, az, dist, t_s=1.0):
    return OnsetEvent(t_s, track_id=tid, label=label, azimuth_deg=az, elevation_deg=0.0, distance_m=dist,
                      confidence=0.9, uncertainty_deg=3.0, t_start=t_s - 0.2)


def http(url, body=None, headers=None, method=None):
    """(status, decoded JSON or text) of one request; error statuses are returned, not raised."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    h = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data=data, headers={**h, **(headers or {})}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("content-type", "")
    return status, (json.loads(raw) if "json" in ctype else raw.decode())


class WsClient:
    """A minimal blocking WebSocket client (wsproto on a socket), enough to test the server."""

    def __init__(self, port, target="/ws", headers=(), host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.inbox = deque()
        self.sock.sendall(self.ws.send(Request(host=f"{host}:{port}", target=target,
                                               extra_headers=list(headers))))
        self.accepted = None
        while self.accepted is None:
            self._pump()

    def _pump(self):
        data = self.sock.recv(65536)
        self.ws.receive_data(data or None)
        for ev in self.ws.events():
            if isinstance(ev, AcceptConnection):
                self.accepted = True
            elif isinstance(ev, RejectConnection):
                self.accepted, self.status = False, ev.status_code
            elif isinstance(ev, TextMessage):
                self.inbox.append(json.loads(ev.data))
        if not data and self.accepted is None:
            self.accepted = False

    def recv(self):
        while not self.inbox:
            self._pump()
        return self.inbox.popleft()

    def recv_until(self, kind):
        out = []
        while not out or out[-1]["type"] != kind:
            out.append(self.recv())
        return out

    def send(self, obj):
        self.sock.sendall(self.ws.send(TextMessage(data=json.dumps(obj))))

    def close(self):
        self.sock.close()


@pytest.fixture()
def hub():
    h = Hub()
    h.set_asker(lambda q: iter(["The dog ", "is on ", "your left."]))
    return h


@pytest.fixture()
def server(hub):
    s = serve(hub, port=0)
    yield s
    s.close()


def test_state_json_follows_published_events(hub, server):
    hub.publish(onset(1, "dog", 90.0, 2.0))
    hub.publish(onset(2, "bird", -45.0, 1.0))
    hub.publish(NarrationEvent(1.3, "a dog started barking on your left", track_id=1, label="dog"))
    hub.publish(OffsetEvent(2.0, 2, "bird", -45.0, 0.0, 1.0, 0.9, 3.0, 0.8, t_end=1.5))
    status, state = http(server.url + "api/state")
    assert status == 200
    assert [(t["label"], t["azimuth_deg"]) for t in state["tracks"]] == [("dog", 90.0)]
    assert state["log"][0]["text"] == "a dog started barking on your left"
    assert all(check_event(e) == [] for e in state["tracks"] + state["log"])


def test_page_and_its_files_are_served(server):
    status, page = http(server.url)
    assert status == 200 and 'id="radar"' in page and "radar.js" in page
    for name in ("radar.js", "style.css"):
        assert http(server.url + name)[0] == 200
    assert http(server.url + "nothing")[0] == 404
    assert http(server.url + "api/state", body={"x": 1})[0] == 405


def test_websocket_sends_snapshot_then_live_events(hub, server):
    hub.publish(onset(1, "dog", 90.0, 2.0))
    c = WsClient(server.port)
    try:
        first = c.recv()
        assert first["type"] == "snapshot" and first["tracks"][0]["label"] == "dog"
        hub.publish(onset(2, "siren", 180.0, 4.0, t_s=2.0))
        hub.publish(NarrationEvent(2.1, "a siren behind you"))
        got = [c.recv(), c.recv()]
        assert [(m["type"], m.get("label")) for m in got] == [("onset", "siren"), ("narration", None)]
        assert all(check_event(m) == [] for m in got)
    finally:
        c.close()


def test_ask_over_websocket_streams_chunks_then_the_answer_event(hub, server):
    c = WsClient(server.port)
    try:
        c.recv()  # snapshot
        c.send({"type": "ask", "question": "where is the dog?"})
        msgs = c.recv_until("answer")
        assert [m["text"] for m in msgs[:-1]] == ["The dog ", "is on ", "your left."]
        assert {m["type"] for m in msgs[:-1]} == {"answer_chunk"}
        assert (msgs[-1]["text"], msgs[-1]["question"]) == ("The dog is on your left.", "where is the dog?")
        c.send({"type": "ask", "question": "x" * 501})
        err = c.recv()
        assert (err["type"], err["status"]) == ("error", 400)
        c.send({"type": "hello"})
        assert c.recv()["type"] == "error"
    finally:
        c.close()


def test_post_ask_returns_the_answer_and_checks_its_input(hub, server):
    status, ans = http(server.url + "api/ask", body={"question": "where is the dog?"})
    assert status == 200 and ans["type"] == "answer" and ans["text"] == "The dog is on your left."
    assert hub.snapshot()["log"][-1]["question"] == "where is the dog?"
    assert http(server.url + "api/ask", body={"question": "x" * 501})[0] == 400
    assert http(server.url + "api/ask", body={"nothing": 1})[0] == 400
    assert http(server.url + "api/ask", body=b"not json")[0] == 400
    assert http(server.url + "api/ask", body=b"x" * 100_000)[0] == 413
    assert http(server.url + "api/ask", body=b"{}", headers={"Content-Type": "text/plain"})[0] == 415
    hub.set_asker(None)
    assert http(server.url + "api/ask", body={"question": "where?"})[0] == 503


def test_posted_orientation_turns_the_head_on_the_stream_clock(hub, server):
    from agent.core.rotation import matrix_to_ypr
    from agent.track.orientation import OrientationInput

    url = server.url + "api/orientation"
    assert http(url, body={"t_s": 0.1, "yaw_deg": 10})[0] == 409  # not taking orientation: says how to
    orientation, now = OrientationInput(), [1.0]
    orientation.at(1.0)  # the stream is at 1 s
    hub.set_orientation(orientation, lambda: now[0])
    status, res = http(url, body=[{"t_s": 0.5, "yaw_deg": 0.0}, {"t_s": 1.0, "yaw_deg": 40.0}])
    assert status == 200 and res == {"accepted": 2, "refused": 0, "t_s": 1.0}
    assert matrix_to_ypr(orientation.at(0.75).matrix)[0] == pytest.approx(20.0, abs=0.5)  # halfway through the turn
    now[0] = 1.2
    status, res = http(url, body={"quaternion": [0.0, 0.0, 0.0, 1.0]})  # no t_s: stamped 1.2 s; yaw 180
    assert status == 200 and res["accepted"] == 1
    assert abs(matrix_to_ypr(orientation.at(1.2).matrix)[0]) == pytest.approx(180.0, abs=0.5)
    status, res = http(url, body={"t_s": 0.9, "yaw_deg": 5.0})  # out of order: refused, warned, not an error
    assert status == 200 and res["refused"] == 1
    assert any("out of order" in text for _, text in orientation.take_warnings())
    assert http(url, body={"t_s": 2.0, "heading": 3})[0] == 400  # malformed: names the form
    assert http(url, body=[])[0] == 400
    assert http(url, body=b"not json")[0] == 400
    assert http(url, method="GET")[0] == 405


def test_a_failing_asker_is_reported_and_the_server_keeps_serving(hub, server):
    def broken(question):
        yield "The "
        raise RuntimeError("decoder ran out of memory")

    hub.set_asker(broken)
    status, err = http(server.url + "api/ask", body={"question": "where?"})
    assert status == 500 and "decoder ran out of memory" in err["error"]
    c = WsClient(server.port)
    try:
        c.recv()
        c.send({"type": "ask", "question": "where?"})
        msgs = c.recv_until("error")
        assert [m["type"] for m in msgs] == ["answer_chunk", "error"] and msgs[-1]["status"] == 500
    finally:
        c.close()
    assert hub.snapshot()["log"] == []  # no answer event for an answer never finished
    assert http(server.url + "api/state")[0] == 200


def test_token_is_required_on_every_request_when_set(hub):
    with serve(hub, port=0, token=TOKEN) as s:
        assert http(s.url + "api/state")[0] == 401
        assert http(s.url + "api/state?token=wrong")[0] == 401
        assert http(s.url)[0] == 401
        assert http(s.url + "api/state", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert http(s.url + "api/state", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert http(s.url + f"api/state?token={TOKEN}")[0] == 200
        assert http(s.url + "api/ask", body={"question": "where?"})[0] == 401
        status, page = http(s.page_url)
        assert status == 200 and f"radar.js?token={TOKEN}" in page and f"style.css?token={TOKEN}" in page
        assert http(s.url + f"radar.js?token={TOKEN}")[0] == 200
        refused = WsClient(s.port)
        assert refused.accepted is False and refused.status == 401
        refused.close()
        ok = WsClient(s.port, target=f"/ws?token={TOKEN}")
        assert ok.accepted and ok.recv()["type"] == "snapshot"
        ok.close()
        bearer = WsClient(s.port, headers=[("Authorization", f"Bearer {TOKEN}")])
        assert bearer.accepted
        bearer.close()


def test_non_loopback_bind_needs_a_token(hub):
    for host in ("0.0.0.0", "192.168.1.20", "::", "robot.local"):
        with pytest.raises(BinauraError, match="--token"):
            serve(hub, host=host, port=0)
    with pytest.raises(BinauraError, match="--token"):
        serve(hub, host="0.0.0.0", port=0, token="has space")
    with serve(hub, host="0.0.0.0", port=0, token=TOKEN) as s:
        assert http(f"http://127.0.0.1:{s.port}/api/state")[0] == 401
        assert http(f"http://127.0.0.1:{s.port}/api/state?token={TOKEN}")[0] == 200


def test_port_in_use_is_one_clear_error(hub, server):
    with pytest.raises(BinauraError, match=f"port {server.port} is already in use"):
        serve(hub, port=server.port)


def test_foreign_host_and_origin_are_refused_on_loopback(server):
    assert http(server.url + "api/state", headers={"Host": "evil.example:80"})[0] == 403
    assert http(server.url + "api/ask", body={"question": "where?"},
                headers={"Origin": "http://evil.example"})[0] == 403
    c = WsClient(server.port, headers=[("Origin", "http://evil.example")])
    assert c.accepted is False and c.status == 403
    c.close()
    same = WsClient(server.port, headers=[("Origin", f"http://127.0.0.1:{server.port}")])
    assert same.accepted
    same.close()


def test_close_tells_websocket_clients_and_frees_the_port(hub):
    s = serve(hub, port=0)
    c = WsClient(s.port)
    c.recv()
    t0 = time.perf_counter()
    s.close()
    assert time.perf_counter() - t0 < 3.0
    c.close()
    serve(hub, port=s.port).close()  # the port is free again


def test_parse_bind():
    assert parse_bind("8765") == ("127.0.0.1", 8765)
    assert parse_bind("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    assert parse_bind("localhost:80") == ("localhost", 80)
    for bad in ("abc", "::1:80", "1.2.3.4:99999", "host:"):
        with pytest.raises(BinauraError):
            parse_bind(bad)
