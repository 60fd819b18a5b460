"""Production settings: no start on the public key, HTTPS switched on together.

Settings are read once per process from the environment, so each case runs
`manage.py` (or a server) in a process of its own, as a deployment would.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

from django.test import override_settings

from chatsite.asgi import INSECURE_START, application
from tests.conftest import free_port
from tests.servers import serve_until_up

ROOT = Path(__file__).resolve().parents[1]
# The production environment README.md's "Production" section documents.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "BEHIND_HTTPS_PROXY": "true",
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"SECRET_KEY", "DEBUG", "BEHIND_HTTPS_PROXY", "SECRET_KEY_FILE",
                        "RELAY_BASE_URL"}}
    return {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "MEDIA_ROOT": str(tmp_path / "media"), **extra}


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_finds_nothing_with_the_documented_production_environment(tmp_path):
    result = _manage(_env(tmp_path, **PRODUCTION_ENV), "check", "--deploy")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout, result.stderr


def test_behind_an_https_proxy_turns_on_every_https_setting_at_once(tmp_path):
    code = ("from django.conf import settings as s; print(s.SECURE_PROXY_SSL_HEADER, "
            "s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
            "s.SECURE_HSTS_SECONDS)")
    on = _manage(_env(tmp_path, **PRODUCTION_ENV), "shell", "-v", "0", "-c", code)
    off = _manage(_env(tmp_path, **{**PRODUCTION_ENV, "BEHIND_HTTPS_PROXY": "false"}),
                  "shell", "-v", "0", "-c", code)
    assert on.stdout.split() == ["('HTTP_X_FORWARDED_PROTO',", "'https')", "True", "True",
                                 "True", "31536000"], on.stderr
    assert off.stdout.split() == ["None", "False", "False", "False", "0"], off.stderr


async def test_the_app_refuses_to_start_on_the_development_key_with_debug_off():
    sent = []

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        sent.append(message)

    with override_settings(INSECURE_SECRET_KEY=True):
        await application({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.failed", "message": INSECURE_START}]
    assert "SECRET_KEY" in INSECURE_START and "manage.py serve" in INSECURE_START


def test_a_bare_production_start_without_a_key_exits_with_the_reason(tmp_path):
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "chatsite.asgi:application", "--port", str(port),
         "--lifespan", "on"],
        cwd=ROOT, env=_env(tmp_path, DEBUG="false"), capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to start: SECRET_KEY is not set" in result.stdout + result.stderr



def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        output, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_serve_on_a_fresh_machine_generates_a_key_beside_the_database_and_keeps_it(tmp_path):
    env = _env(tmp_path, DEBUG="false")
    key_file = tmp_path / "secret-key"
    port = free_port()
    first = _stop(serve_until_up(env, port))
    assert f"Generated a SECRET_KEY in {key_file}" in first
    key = key_file.read_text().strip()
    assert len(key) >= 50 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = _stop(serve_until_up(env, port))
    assert "Generated a SECRET_KEY" not in second
    assert key_file.read_text().strip() == key
    # Every later command of the install reads the same key.
    shown = _manage(env, "shell", "-v", "0", "-c", "from django.conf import settings; "
                    "print(settings.SECRET_KEY, settings.INSECURE_SECRET_KEY)")
    assert shown.stdout.split() == [key, "False"]


def test_the_generated_key_file_is_never_committed():
    """A key in the repository would be every clone's key: git must ignore the file."""
    checked = subprocess.run(["git", "check-ignore", "-q", "--no-index", "secret-key"],
                             cwd=ROOT, capture_output=True)
    assert checked.returncode == 0, "secret-key beside the default database is not git-ignored"
    tracked = subprocess.run(["git", "ls-files", "--", "secret-key", "db.sqlite3"],
                             cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout == ""
