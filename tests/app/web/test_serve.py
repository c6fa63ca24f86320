"""`scriptbox serve` as a real process: gunicorn, a websocket through it, a graceful SIGTERM.

The server runs as a subprocess on a free loopback port with `--demo`, exactly as the
README starts it. The SIGTERM test catches a run mid-flight without sleeping: the demo
script "Ask first, then work" pauses on a sign-in prompt, the test stops the server
while the prompt is open, then refuses the prompt over the same websocket; the run must
finish (`succeeded`, result `{"connected": false}`) and the process exit 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_websocket import Client, ConnectionClosed

from app.demo import DEMO_PASSWORD
from app.integrations.vault import generate_key

SCRIPTBOX = Path(sys.executable).with_name("scriptbox")
SECRET_CODE = "oauth-code-that-must-not-be-logged"


class Server:
    """A `scriptbox serve` subprocess and everything it printed."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("Scriptbox on "):
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting either way

    def wait_ready(self) -> None:
        assert self._ready.wait(timeout=60), "the server did not start"
        assert self.process.poll() is None, "".join(self.lines)

    def output(self) -> str:
        """Everything printed once the process has ended (stdout and stderr, merged)."""
        self._reader.join(timeout=60)
        assert not self._reader.is_alive(), "a process still holds the server's output"
        return "".join(self.lines)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(
    tmp_path: Path, *args: str, public_url: str | None = "", port: int | None = None
) -> Server:
    """`serve --demo` on `port` (a free one by default); SCRIPTBOX_PUBLIC_URL is that port's
    loopback URL by default, `public_url` when given, and unset when it is None."""
    port = port or free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SCRIPTBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'scriptbox.sqlite'}",
        "SCRIPTBOX_SECRET_KEY": "serve-test-session-key",
        "SCRIPTBOX_SECRET_KEYS": generate_key(),
        "SCRIPTBOX_PUBLIC_URL": public_url or f"http://127.0.0.1:{port}",
        "SCRIPTBOX_IDLE_WORKERS": "1",
    }
    if public_url is None:
        del env["SCRIPTBOX_PUBLIC_URL"]
    process = subprocess.Popen(
        [str(SCRIPTBOX), "serve", "--demo", "--port", str(port), "--threads", "8", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so teardown can end all of it
    )
    return Server(process, f"http://127.0.0.1:{port}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path)
    try:
        running.wait_ready()
        yield running
    finally:
        stop(running)


def stop(running: Server) -> None:
    """End the server and every process it started (its own process group)."""
    if running.process.poll() is None:
        running.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            running.process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(running.process.pid, signal.SIGKILL)  # a worker left behind, if any
    running.process.wait(timeout=30)
    running.output()  # the reader ends with the last writer of the pipe
    assert running.process.stdout is not None
    running.process.stdout.close()


def sign_in(server: Server, email: str) -> tuple[requests.Session, str]:
    """A signed-in session and its CSRF token."""
    http = requests.Session()
    page = http.get(f"{server.url}/login", timeout=30)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert page.status_code == 200 and token is not None
    answer = http.post(
        f"{server.url}/login",
        data={"email": email, "password": DEMO_PASSWORD, "csrf_token": token.group(1)},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text[:300]
    scripts_page = http.get(f"{server.url}/f/demo/scripts", timeout=30)
    token = re.search(r'name="csrf-token" content="([^"]+)"', scripts_page.text)
    assert scripts_page.status_code == 200 and token is not None
    return http, token.group(1)


def open_page(server: Server, http: requests.Session) -> Any:
    """The websocket of an open page in facility `demo`, past its hello."""
    cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    ws = Client.connect(
        f"ws://{server.url.removeprefix('http://')}/ws?facility=demo",
        headers={"Origin": server.url, "Cookie": cookie},
    )
    # A ping makes the server send more: simple-websocket's client leaves a first frame
    # that came in with the handshake buffered until more data arrives.
    ws.send(json.dumps({"type": "ping"}))
    assert json.loads(ws.receive(timeout=60)) == {"type": "hello", "facility": "demo"}
    assert next_of(ws, "pong") == {"type": "pong"}
    return ws


def next_of(ws: Any, kind: str) -> dict[str, Any]:
    """The next message of the given type (others, like run.status, are skipped)."""
    while True:
        raw = ws.receive(timeout=60)
        assert raw is not None, f"no {kind} message arrived"
        message: dict[str, Any] = json.loads(raw)
        if message["type"] == kind:
            return message


def script_id(http: requests.Session, server: Server, name: str) -> int:
    scripts = http.get(f"{server.url}/api/f/demo/scripts", timeout=30).json()
    return next(int(script["id"]) for script in scripts if script["name"] == name)


def test_pages_and_a_websocket_are_served(server: Server) -> None:
    http, _ = sign_in(server, "member@example.com")
    ws = open_page(server, http)  # hello and pong came back through gunicorn
    try:
        ws.send(json.dumps({"type": "grant.refuse", "grant_id": "nope"}))
        assert next_of(ws, "error")["code"] == "not_found"
    finally:
        ws.close()


@pytest.mark.parametrize("to_group", [False, True], ids=["to-the-server", "to-its-group"])
def test_sigterm_lets_the_running_run_finish_and_exits_0(server: Server, to_group: bool) -> None:
    """Whether SIGTERM reaches the server alone (`kill`, a container's runtime) or every
    process of its group (systemd's default, honcho, a terminal's job control): the
    sandbox's processes belong to the server, which stops them once the run is done."""
    http, csrf = sign_in(server, "member@example.com")
    ws = open_page(server, http)
    started = http.post(
        f"{server.url}/api/f/demo/runs",
        json={"script_id": script_id(http, server, "Ask first, then work"), "interactive": True},
        headers={"X-CSRF-Token": csrf},
        timeout=30,
    )
    assert started.status_code == 201, started.text
    prompt = next_of(ws, "grant.required")  # the run is paused inside its worker now

    if to_group:
        os.killpg(server.process.pid, signal.SIGTERM)
    else:
        server.process.send_signal(signal.SIGTERM)
    ws.send(json.dumps({"type": "grant.refuse", "grant_id": prompt["grant_id"]}))
    finished = next_of(ws, "run.finished")
    assert finished["run"]["status"] == "succeeded", finished
    assert finished["run"]["result"] == {"connected": False}
    with pytest.raises(ConnectionClosed) as closed:  # then the page is told we go away
        while True:
            ws.receive(timeout=60)
    assert closed.value.reason == 1001
    assert server.process.wait(timeout=120) == 0
    assert "Handling signal: term" in server.output()


def test_runs_go_on_after_the_sandbox_workers_inherited_from_the_demo(server: Server) -> None:
    """--demo publishes its scripts (each checked in a sandbox worker) before gunicorn
    forks: the forked web worker inherited that sandbox without its reader thread, so
    the zygote's new workers went to the master and every run after the inherited idle
    one (SCRIPTBOX_IDLE_WORKERS=1 here) stayed `running` for ever."""
    http, csrf = sign_in(server, "scripter@example.com")
    for number in range(4):
        answer = http.post(
            f"{server.url}/api/f/demo/runs",
            json={"source": f"result = {number}", "wait": 60},
            headers={"X-CSRF-Token": csrf},
            timeout=90,
        )
        assert answer.status_code == 200, answer.text[:300]
        assert (answer.json()["status"], answer.json()["result"]) == ("succeeded", number)
    checked = http.post(
        f"{server.url}/api/f/demo/readiness",
        json={"source": "result = 1"},
        headers={"X-CSRF-Token": csrf},
        timeout=90,
    )
    assert checked.status_code == 200, checked.text[:300]


def _answers(sock: socket.socket, count: int) -> list[bytes]:
    """The status lines of the next `count` answers on a kept-alive connection."""
    reader = sock.makefile("rb")
    statuses = []
    for _ in range(count):
        statuses.append(reader.readline().strip())
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        reader.read(length)
    return statuses


def test_a_kept_alive_connection_is_served_at_once_and_after_a_pause(server: Server) -> None:
    """The worker answers a connection's next request on the same thread when it comes at
    once (two requests in one packet, too) and through gunicorn's loop when it comes later."""
    host, port = server.url.removeprefix("http://").split(":")
    request = f"GET /login HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request * 2)  # pipelined: the second is read ahead with the first
        assert _answers(sock, 2) == [b"HTTP/1.1 200 OK"] * 2
        for pause in (0.0, 0.2, 0.0):  # 0.2 s: long past the linger, back to the loop
            threading.Event().wait(pause)
            sock.sendall(request)
            assert _answers(sock, 1) == [b"HTTP/1.1 200 OK"]
    http = requests.Session()  # one connection for all of them
    assert all(http.get(f"{server.url}/login", timeout=30).ok for _ in range(20))


def test_the_access_log_holds_no_query_string(server: Server) -> None:
    http, _ = sign_in(server, "member@example.com")
    http.get(f"{server.url}/oauth/callback?code={SECRET_CODE}&state=s", timeout=30)
    http.get(f"{server.url}/login?next=/f/demo/scripts", timeout=30)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=120) == 0
    output = server.output()
    access = [line for line in output.splitlines() if '"GET ' in line or '"POST ' in line]
    assert any('"GET /oauth/callback HTTP/1.1"' in line for line in access), output
    assert SECRET_CODE not in output
    assert not [line for line in access if "?" in line], access
    # Each line: client, time, request, status, bytes, milliseconds, user agent.
    login = next(line for line in access if '"GET /login HTTP/1.1"' in line)
    assert re.fullmatch(
        r'127\.0\.0\.1 \[[^]]+\] "GET /login HTTP/1\.1" 200 \d+ \d+ms "python-requests/[^"]+"',
        login.rstrip(),
    ), login


def test_more_than_one_worker_is_refused_with_the_embedded_executor(tmp_path: Path) -> None:
    refused = start_server(tmp_path, "--workers", "2")
    try:
        assert refused.process.wait(timeout=60) == 2  # click's usage error
        assert "--workers must be 1 with the embedded executor" in refused.output()
    finally:
        stop(refused)


def test_a_port_in_use_is_one_line_that_names_it_and_says_port(tmp_path: Path) -> None:
    """Port 5000 taken (the README's default; macOS's AirPlay listens there) was five
    retries of gunicorn's errors, then "Can't connect", after the migrations and the demo
    data: nothing said that --port picks another port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = start_server(tmp_path, port=port)
        try:
            assert refused.process.wait(timeout=60) == 1  # click's error, before gunicorn
            assert refused.output() == (
                f"Error: 127.0.0.1:{port} is in use (another server listens there): stop it, "
                "or serve on another port with --port\n"
            )
        finally:
            stop(refused)


def test_serving_on_every_interface_keeps_pages_live_at_loopback(tmp_path: Path) -> None:
    """`serve --host 0.0.0.0` with no SCRIPTBOX_PUBLIC_URL (the README's scale-out once) took
    http://0.0.0.0:<port> as the public URL, so a page opened at 127.0.0.1 had its
    websocket refused (forbidden_origin) and its runs seemed to stay queued."""
    everywhere = start_server(tmp_path, "--host", "0.0.0.0", public_url=None)
    try:
        everywhere.wait_ready()
        port = everywhere.url.rsplit(":", 1)[1]
        ready = next(line for line in everywhere.lines if line.startswith("Scriptbox on "))
        assert ready.strip() == f"Scriptbox on {everywhere.url}/ (listening on 0.0.0.0:{port})"
        http, _ = sign_in(everywhere, "member@example.com")
        open_page(everywhere, http).close()  # its Origin is http://127.0.0.1:<port>
    finally:
        stop(everywhere)


def test_an_operators_public_url_is_kept_whatever_serve_listens_on(tmp_path: Path) -> None:
    # Equal to the built-in default, it was once taken for unset and replaced by --port's.
    kept = start_server(tmp_path, public_url="http://127.0.0.1:5000")
    try:
        kept.wait_ready()
        port = kept.url.rsplit(":", 1)[1]
        ready = next(line for line in kept.lines if line.startswith("Scriptbox on "))
        listening = f"(listening on 127.0.0.1:{port})"
        assert ready.strip() == f"Scriptbox on http://127.0.0.1:5000/ {listening}"
    finally:
        stop(kept)


def test_debug_keeps_the_development_server_without_queries_in_its_log(tmp_path: Path) -> None:
    dev = start_server(tmp_path, "--debug")
    try:
        dev.wait_ready()
        page = requests.get(f"{dev.url}/login?code={SECRET_CODE}", timeout=30)
        assert page.status_code == 200 and "csrf-token" in page.text
    finally:
        stop(dev)
    output = dev.output()
    assert '"GET /login HTTP/1.1" 200' in output  # werkzeug's request line, not gunicorn's
    assert "gunicorn" not in output and SECRET_CODE not in output
