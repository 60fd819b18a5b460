"""Browser tests: Debian's Chromium drives the real app served by `manage.py serve`.

The app runs as a subprocess on its own SQLite file with the built-in relay
simulator mounted on it, exactly as the README's first command runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
PASSWORD = "correct-horse-battery-staple"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is required under CI=true (tests/run.sh installs it)")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


class LiveApp:
    def __init__(self, workdir: Path, port: int, extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        self.port = port
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "MEDIA_ROOT": str(workdir / "media"),
            "DEBUG": "false",
            "SIMULATOR_TOKEN_RATE": "25",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.env.pop("RELAY_BASE_URL", None)
        self.process: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
            text=True, timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> str:
        """Run Django ORM code inside the app's environment (set-up for a test)."""
        return self.manage("shell", "-c", code)

    def start(self) -> LiveApp:
        self.manage("migrate", "--noinput", "-v", "0")
        self.shell(
            "from django.contrib.auth.models import User\n"
            f"User.objects.create_superuser('alice', '', '{PASSWORD}')\n"
            f"User.objects.create_user('bob', '', '{PASSWORD}')\n"
        )
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--port", str(self.port), "--no-migrate",
                 "--log-level", "warning"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/login/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="session")
def live_app(tmp_path_factory) -> LiveApp:
    app = LiveApp(tmp_path_factory.mktemp("live-app"), free_port()).start()
    yield app
    app.stop()


def sign_in(page, live_app: LiveApp, username: str = "alice") -> None:
    page.goto(f"{live_app.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_app.url}/c/**")


# -- what every browser test does on a page ---------------------------------------

REPLY_TIMEOUT = 30_000  # ms


def message_box(page):
    return page.get_by_label("Message", exact=True)


def last_reply(page):
    return page.locator("article.message-assistant").last


def pick_model(page, name: str, label: str = "Model") -> None:
    """Choose the model named `name` in the select labelled `label` (its option
    says what the model takes after the name: "Name · pictures, audio")."""
    select = page.get_by_label(label, exact=True)
    option = select.locator("option").filter(has_text=re.compile(rf"^{re.escape(name)}( · |$)"))
    select.select_option(option.first.get_attribute("value"))


def start_chat(page, live_app: LiveApp, model: str, text: str) -> str:
    """New chat with `model`, first message sent with Enter; returns the conversation URL."""
    page.goto(f"{live_app.url}/c/new/")
    pick_model(page, model)
    message_box(page).fill(text)
    message_box(page).press("Enter")
    page.wait_for_url(re.compile(r".*/c/\d+/$"))
    return page.url
