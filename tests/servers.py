"""Server processes for the tests that need real ones: `manage.py serve` on
its own database, signed in over HTTP, watched over a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "pw-for-multiprocess-1"


def server_env(tmp_path: Path, **settings: str) -> dict:
    """The environment of a test's servers: its own media folder, the simulator,
    and `settings` (DATABASE_URL, REDIS_URL, …)."""
    env = {**os.environ, "MEDIA_ROOT": str(tmp_path / "media"), "SIMULATOR_TOKEN_RATE": "20",
           "PYTHONUNBUFFERED": "1", **settings}
    for name in ("RELAY_BASE_URL", "REDIS_URL", "GENERATION_MODE"):
        if name not in settings:
            env.pop(name, None)
    return env


def prepare_site(env: dict) -> None:
    """Migrate the database and create the user the tests sign in as."""
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "shell", "-c", "from django.contrib.auth.models import User; "
           f"User.objects.create_user('alice', '', '{PASSWORD}')")


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


class Server:
    def __init__(self, env: dict, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.log = log
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port), "--no-migrate",
             "--log-level", "warning", *extra],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text())
            try:
                httpx.get(f"{self.url}/login/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def sign_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10)
    client.get("/login/")
    response = client.post(
        "/login/",
        data={"username": "alice", "password": PASSWORD,
              "csrfmiddlewaretoken": client.cookies["csrftoken"]},
    )
    assert response.status_code == 302, response.text
    return client


def post(client: httpx.Client, path: str, data: dict) -> httpx.Response:
    return client.post(
        path, data=data,
        headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true",
                 "Referer": str(client.base_url)},
    )


def model_id(client: httpx.Client, name: str) -> str:
    page = client.get("/c/new/").text
    match = re.search(r'<option value="(\d+)"[^>]*>' + re.escape(name), page)
    assert match, f"no model {name!r} in the picker"
    return match.group(1)


async def listen(url: str, cookies: httpx.Cookies, until: str, timeout: float = 30) -> str:
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    received = ""
    async with websockets.connect(
        url, additional_headers={"Cookie": cookie, "Origin": "http://127.0.0.1"}
    ) as socket:
        async with asyncio.timeout(timeout):
            while until not in received:
                received += await socket.recv()
    return received


class PrivateRedis:
    """A redis-server of the test's own, on a free port, that the test can stop."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


def serve_until_up(env: dict, port: int, log: Path | None = None) -> subprocess.Popen:
    """`manage.py serve` (with its migrate and first-run set-up) on `port`, once it
    answers; its output goes to `log`, or is read back when it fails."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log.open("w") if log else subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )

    def output() -> str:
        return log.read_text() if log else (process.stdout.read() if process.stdout else "")

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited:\n{output()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login/", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"serve did not start:\n{output()}")


PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


class PrivatePostgres:
    """A PostgreSQL server of the test's own, on a free port, that the test can
    take away (an immediate stop: the server's processes die at once, as in a
    crash, and the next start recovers from the log) and start again on the
    same port and data. Run as the `postgres` user when the test runs as root
    (initdb refuses root)."""

    def __init__(self) -> None:
        self.port = free_port()
        # Not under pytest's tmp_path: its folders are root's alone (0700).
        self.folder = Path(tempfile.mkdtemp(prefix="private-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.folder, "postgres", "postgres")

    @staticmethod
    def available() -> bool:
        return all((PG_BIN / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, text=True,
                       cwd=self.folder)

    def create(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale", "C")

    def start(self) -> None:
        # fsync off: the test's data need not survive the machine, only the
        # server's death (written pages are in the OS's cache), as a crash.
        options = (f"-p {self.port} -k {self.folder} -h 127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=100")
        self._run(str(PG_BIN / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "30", "-o", options)

    def kill(self) -> None:
        """Away at once, as in a crash: every connection is cut."""
        self._run(str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
