"""`manage.py backup` while the server runs and writes, then `manage.py restore`.

The app runs as `manage.py serve` on its own SQLite file and media folder, as
the README starts it; messages with pictures keep arriving during the backup.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.fixtures import media
from tests.servers import serve_until_up

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct-horse-battery-staple"
PNG = media.png(64, 48)
CHECK = """
import sqlite3
from django.conf import settings
from conversations.models import Attachment, Message, Relay
from conversations.relays.setup import simulator_key
db = sqlite3.connect(settings.DATABASES['default']['NAME'])
print('integrity', db.execute('PRAGMA integrity_check').fetchone()[0])
print('first', Message.objects.filter(text='before the backup').count())
missing = [a.pk for a in Attachment.objects.all() if not a.file.storage.exists(a.file.name)]
print('attachments', Attachment.objects.count(), 'missing', len(missing))
first = Attachment.objects.filter(message__text='before the backup').get()
print('same_bytes', first.file.open('rb').read() == bytes.fromhex('{png}'))
print('key_readable', Relay.objects.get(is_simulated=True).api_key == simulator_key())
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"SECRET_KEY", "RELAY_BASE_URL", "SECRET_KEY_FILE"}}
    return {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "MEDIA_ROOT": str(tmp_path / "media"), "DEBUG": "false",
            "SIMULATOR_TOKEN_RATE": "0", "PYTHONUNBUFFERED": "1"}


def _manage(env, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        pytest.fail(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result



def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def _sign_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    client.get("/login/")
    response = client.post("/login/", data={"username": "alice", "password": PASSWORD,
                                            "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert response.status_code == 302, response.text
    return client


def _send(client: httpx.Client, model_id: str, text: str) -> httpx.Response:
    return client.post("/c/new/", data={"model": model_id, "text": text},
                       files={"files": ("photo.png", PNG, "image/png")},
                       headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true",
                                "Referer": str(client.base_url)})


def _check(env) -> dict[str, list[str]]:
    out = _manage(env, "shell", "-v", "0", "-c", CHECK.replace("{png}", PNG.hex())).stdout
    return {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}


def test_a_backup_taken_while_the_server_writes_restores_everything_it_names(tmp_path):
    env = _env(tmp_path)
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "shell", "-v", "0", "-c", "from django.contrib.auth.models import User; "
            f"User.objects.create_user('alice', '', '{PASSWORD}')")
    port = free_port()
    server = serve_until_up(env, port, tmp_path / "server.log")
    try:
        client = _sign_in(f"http://127.0.0.1:{port}")
        page = client.get("/c/new/").text
        model_id = re.search(r'<option value="(\d+)"[^>]*>Gemini 2.5 Flash \(simulated\)',
                             page).group(1)
        assert _send(client, model_id, "before the backup").status_code == 200

        writing = threading.Event()
        writing.set()
        sent = []

        def keep_writing():
            writer = _sign_in(f"http://127.0.0.1:{port}")
            while writing.is_set():
                sent.append(_send(writer, model_id, f"during the backup {len(sent)}").status_code)

        writer = threading.Thread(target=keep_writing)
        writer.start()
        time.sleep(0.5)
        archive = tmp_path / "backups" / "site.tar.gz"
        result = _manage(env, "backup", str(archive))
        writing.clear()
        writer.join(timeout=60)
        assert "Backed up the sqlite database" in result.stdout
        assert sent and set(sent) == {200}, sent  # the server kept working meanwhile
    finally:
        _stop(server)

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"db.sqlite3", "manifest.json", "secret-key"} <= set(names)
    assert oct(archive.stat().st_mode & 0o777) == "0o600"

    # The machine is lost: database, files and key.
    for path in tmp_path.glob("db.sqlite3*"):
        path.unlink()
    (tmp_path / "secret-key").unlink()
    subprocess.run(["rm", "-rf", str(tmp_path / "media")], check=True)

    restored = _manage(env, "restore", str(archive), "--yes")
    assert "Restored the backup" in restored.stdout
    state = _check(env)
    assert state["integrity"] == ["ok"]
    assert state["first"] == ["1"]
    assert state["attachments"][2:] == ["0"], state  # every file a row names is there
    assert state["same_bytes"] == ["True"] and state["key_readable"] == ["True"]

    server = serve_until_up(env, port, tmp_path / "server-after.log")
    try:
        client = _sign_in(f"http://127.0.0.1:{port}")
        conversations = client.get("/c/new/").text
        first = re.search(r'href="(/c/\d+/)">\s*<span class="title"[^>]*>before the backup',
                          conversations)
        assert first, "the restored conversation is not in the sidebar"
        assert "before the backup" in client.get(first.group(1)).text
    finally:
        _stop(server)
