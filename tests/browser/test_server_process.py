"""The `linli` process as an operator meets it: start-up checks, live events over SSE,
graceful shutdown on SIGTERM, and durability of acknowledged writes across kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def binary() -> Path:
    path = Path(os.environ.get("LINLI_BIN", REPO / ".build/debug/linli"))
    if not path.exists():
        pytest.fail(f"linli binary not found at {path}: build first or set LINLI_BIN", pytrace=False)
    return path


def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(binary()), *args], input=stdin, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        pytest.fail(f"linli {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `linli serve` on a data folder."""

    def __init__(self, data: Path, mqtt_port: int | None = None, args: list[str] | None = None,
                 env: dict[str, str] | None = None):
        self.data = data
        self.args = args or []  # more `serve` flags
        self.env = {**os.environ, **(env or {})}  # settings only the environment gives (LINLI_…)
        self.port = free_port()
        self.mqtt = f"127.0.0.1:{mqtt_port}" if mqtt_port else "off"
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"serve-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Node":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(binary()), "serve", "--data", str(self.data), "--http", f"127.0.0.1:{self.port}", "--mqtt", self.mqtt, *self.args],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail("server not ready:\n" + self.log.read_text(), pytrace=False)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=20)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    run("demo", "--data", str(folder))
    run("user", "create", "--data", str(folder), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin="operations-password-1\n")
    return folder


def token(data: Path) -> str:
    return run("token", "create", "--data", str(data), "--username", "ops", "--name", "test").stdout.strip().splitlines()[-1]


def community_id(node: Node, headers: dict) -> str:
    return requests.get(node.url + "/api/v1/communities", headers=headers, timeout=10).json()["items"][0]["id"]


def test_bad_configuration_stops_start_up_with_the_key_named(tmp_path: Path):
    result = run("serve", "--data", str(tmp_path / "d"), "--log-level", "loud", check=False)
    assert result.returncode != 0 and "--log-level" in result.stderr
    result = run("serve", "--data", str(tmp_path / "d"), "--http", "127.0.0.1:99999", check=False)
    assert result.returncode != 0 and "--http" in result.stderr
    result = run("serve", "--data", str(tmp_path / "d"), "--mqtt", "nowhere", check=False)
    assert result.returncode != 0 and "--mqtt" in result.stderr
    config = tmp_path / "linli.conf"
    config.write_text("http = 127.0.0.1:8080\ncolour = blue\n")
    result = run("serve", "--config", str(config), check=False)
    assert result.returncode != 0 and "line 2" in result.stderr
    env_result = subprocess.run([str(binary()), "serve", "--data", str(tmp_path / "d")], env={**os.environ, "LINLI_POSTGRES_URL": "mysql://x"},
                                capture_output=True, text=True, timeout=60)
    assert env_result.returncode != 0 and "LINLI_POSTGRES_URL" in env_result.stderr


def test_serve_refuses_a_database_newer_than_it_understands(data: Path):
    with sqlite3.connect(data / "linli.sqlite") as db:
        db.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)")
    result = run("serve", "--data", str(data), "--http", f"127.0.0.1:{free_port()}", "--mqtt", "off", check=False)
    assert result.returncode != 0
    assert "newer" in result.stderr


def test_live_events_stream_over_sse(data: Path):
    node = Node(data).start()
    try:
        headers = {"Authorization": "Bearer " + token(data)}
        cid = community_id(node, headers)
        with requests.get(node.url + "/api/v1/events/stream", headers=headers, stream=True, timeout=20) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            created = requests.post(f"{node.url}/api/v1/communities/{cid}/buildings", headers=headers, json={"name": "SSE楼", "floors": 3}, timeout=10)
            assert created.status_code == 201
            building_id = created.json()["id"]
            event = {}
            deadline = time.monotonic() + 15
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("data: "):
                    event = json.loads(line[len("data: "):])
                    if event.get("subjectId") == building_id:
                        break
                assert time.monotonic() < deadline, "no event within 15 s"
            assert event["type"] == "building.created" and event["communityId"] == cid
        # Without credentials the stream is refused.
        assert requests.get(node.url + "/api/v1/events/stream", timeout=10).status_code == 401
    finally:
        assert node.stop() == 0


def test_sigterm_shuts_down_cleanly_and_acknowledged_writes_survive_kill_9(data: Path):
    node = Node(data).start()
    headers = {"Authorization": "Bearer " + token(data)}
    cid = community_id(node, headers)
    ids = []
    for i in range(20):
        r = requests.post(f"{node.url}/api/v1/communities/{cid}/people", headers=headers, json={"name": f"持久{i}", "phone": "13500000000"}, timeout=10)
        assert r.status_code == 201
        ids.append(r.json()["id"])
    # kill -9 right after the last acknowledgement: nothing acknowledged may be lost.
    assert node.stop(signal.SIGKILL) == -signal.SIGKILL
    node = Node(data).start()
    for person_id in ids:
        assert requests.get(f"{node.url}/api/v1/people/{person_id}", headers=headers, timeout=10).status_code == 200
    started = time.monotonic()
    assert node.stop(signal.SIGTERM) == 0, node.log.read_text()
    assert time.monotonic() - started < 10


def test_sigterm_lets_an_in_flight_request_finish(data: Path):
    node = Node(data).start()
    headers = {"Authorization": "Bearer " + token(data)}
    cid = community_id(node, headers)
    # A 50,000-row sheet takes the server a second or more to check: long enough to stop it mid-way.
    rows = ["building,unit,room,floor,area,occupancy,name,phone"]
    rows += [f"B{i % 50},U{i % 4},{i},{1 + i % 30},80,rented,Name{i},1380000{i % 10000:04d}" for i in range(50_000)]
    result: dict = {}

    def post():
        try:
            result["response"] = requests.post(f"{node.url}/api/v1/communities/{cid}/households/import?dryRun=true",
                                               headers=headers, data="\n".join(rows).encode(), timeout=60)
        except requests.RequestException as error:
            result["error"] = error

    worker = threading.Thread(target=post)
    worker.start()
    time.sleep(0.3)
    assert node.stop(signal.SIGTERM) == 0, node.log.read_text()
    worker.join(60)
    assert "error" not in result, f"the request was cut off: {result.get('error')}"
    assert result["response"].status_code == 200
    assert result["response"].json()["rows"] == 50_000


def raw_http(node: Node, request: bytes, wait: float) -> tuple[bytes, float]:
    """Sends bytes on a fresh connection; returns what came back until the server closed it (or
    `wait` passed) and how long that took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.port), timeout=wait) as s:
        s.sendall(request)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except socket.timeout:
            pass
    return answer, time.monotonic() - started


def test_broken_http_framing_is_the_clients_fault_and_half_requests_are_let_go(data: Path, tmp_path: Path):
    config = tmp_path / "idle.conf"
    config.write_text("http-idle-seconds = 2\n")
    node = Node(data, args=["--config", str(config)]).start()
    try:
        # A chunk size that is not hex: 400 naming the body, never a 500, even before sign-in.
        answer, _ = raw_http(node, b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n", wait=10)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b'"field":"body"' in answer
        # Half a request's headers, then nothing: closed after the idle limit.
        answer, took = raw_http(node, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", wait=15)
        assert answer == b"" and 1.5 < took < 10, (answer, took)
        # A body that stops half-way: closed after the same pause, without a 500.
        answer, took = raw_http(node, b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: 100\r\n\r\n{\"user", wait=15)
        assert b"HTTP/1.1 500" not in answer and 1.5 < took < 10, (answer, took)
        # An idle kept-alive connection goes too, after its answer.
        answer, took = raw_http(node, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", wait=15)
        assert answer.startswith(b"HTTP/1.1 200") and 1.5 < took < 10, (answer, took)
        # A live event stream is a request in progress, not idle: it outlasts the limit.
        headers = {"Authorization": "Bearer " + token(data)}
        cid = community_id(node, headers)
        with requests.get(node.url + "/api/v1/events/stream", headers=headers, stream=True, timeout=20) as stream:
            assert stream.status_code == 200
            time.sleep(4)
            created = requests.post(f"{node.url}/api/v1/communities/{cid}/buildings", headers=headers, json={"name": "慢楼", "floors": 2}, timeout=10)
            assert created.status_code == 201
            building = created.json()["id"]
            for line in stream.iter_lines():
                if line.startswith(b"data: ") and building.encode() in line:
                    break
        assert "request failed" not in node.log.read_text(), "no error was logged for the client's faults"
    finally:
        assert node.stop() == 0


def test_http_clients_are_told_the_methods_and_the_media_type(data: Path):
    node = Node(data).start()
    try:
        headers = {"Authorization": "Bearer " + token(data)}
        cid = community_id(node, headers)
        # A path that exists under other methods: 405 with Allow; one that exists under none: 404.
        r = requests.delete(node.url + "/api/v1/communities", headers=headers, timeout=10)
        assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, POST", (r.status_code, r.headers)
        assert r.headers["Content-Type"] == "application/problem+json" and r.json()["type"].endswith("/method-not-allowed")
        r = requests.put(f"{node.url}/api/v1/households/any-id", headers=headers, json={}, timeout=10)
        assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, PATCH"
        assert requests.delete(node.url + "/api/v1/nowhere", headers=headers, timeout=10).status_code == 404
        # The console answers with its page.
        r = requests.delete(node.url + "/console", timeout=10, allow_redirects=False)
        assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD" and r.headers["Content-Type"].startswith("text/html")
        # HEAD wherever GET is, as an uptime monitor asks: the answer without its body; on the event
        # stream too, which ends at once rather than streaming.
        r = requests.head(node.url + "/healthz", timeout=10)
        assert r.status_code == 200 and r.content == b""
        assert requests.head(node.url + "/api/v1/communities", timeout=10).status_code == 401, "a HEAD is checked as its GET is"
        started = time.monotonic()
        r = requests.head(node.url + "/api/v1/events/stream", headers=headers, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream" and time.monotonic() - started < 5

        buildings = f"{node.url}/api/v1/communities/{cid}/buildings"
        # JSON labelled as a form, which is what `curl -d` sends without -H: 415, naming the header.
        r = requests.post(buildings, headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
                          data=json.dumps({"name": "表单楼", "floors": 3}).encode(), timeout=10)
        assert r.status_code == 415 and r.headers["Accept-Post"] == "application/json", (r.status_code, r.text)
        assert r.json()["errors"][0]["field"] == "Content-Type"
        # json= and a body with no Content-Type at all are both read as JSON.
        assert requests.post(buildings, headers=headers, json={"name": "JSON楼", "floors": 3}, timeout=10).status_code == 201
        assert requests.post(buildings, headers=headers, data=json.dumps({"name": "无类型楼", "floors": 3}).encode(), timeout=10).status_code == 201
        if shutil.which("curl"):
            curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: {headers['Authorization']}", buildings]
            body = json.dumps({"name": "curl楼", "floors": 3})
            assert subprocess.run(curl + ["-d", body], capture_output=True, text=True, timeout=30).stdout == "415"
            assert subprocess.run(curl + ["-H", "Content-Type: application/json", "-d", body], capture_output=True, text=True, timeout=30).stdout == "201"
    finally:
        assert node.stop() == 0
