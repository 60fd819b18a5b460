"""A copy of the database and the stored files taken while the server runs, and
its restore (`manage.py backup`, `manage.py restore`).

The archive (a .tar.gz) holds the database (SQLite through its online backup
API, a consistent snapshot even mid-write; PostgreSQL through pg_dump), every
file under MEDIA_ROOT, and the SECRET_KEY file that `serve` generated, without
which stored relay keys cannot be read. Files are copied before and after the
database snapshot, so every file a row of the snapshot names is in the archive
(uploads are stored before their row commits, deletions happen after theirs).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import connections

FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot be done, said in plain words."""


def _database() -> dict:
    return connections["default"].settings_dict


def _is_sqlite() -> bool:
    return _database()["ENGINE"] == "django.db.backends.sqlite3"


def make_backup(*, destination: Path) -> dict:
    """Write the archive to `destination`; returns its manifest."""
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        files = _copy_new_files(media_root, work_dir / "media")
        database = _snapshot_database(work_dir)
        files += _copy_new_files(media_root, work_dir / "media")
        key_file = Path(settings.SECRET_KEY_FILE)
        if key_file.is_file():
            shutil.copy2(key_file, work_dir / "secret-key")
        manifest = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()),
                    "database": database, "files": files,
                    "secret_key_file": key_file.is_file()}
        (work_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            for entry in sorted(work_dir.iterdir()):
                archive.add(entry, arcname=entry.name)
        os.chmod(partial, 0o600)  # it holds the secret key and every conversation
        partial.replace(destination)
    return manifest


def _copy_new_files(source: Path, target: Path) -> int:
    copied = 0
    if not source.is_dir():
        return 0
    for path in source.rglob("*"):
        if not path.is_file():
            continue
        destination = target / path.relative_to(source)
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, destination)
        except FileNotFoundError:  # deleted meanwhile: its row is gone too
            continue
        copied += 1
    return copied


def _snapshot_database(work_dir: Path) -> str:
    db = _database()
    if _is_sqlite():
        source = sqlite3.connect(db["NAME"], timeout=30)
        target = sqlite3.connect(work_dir / "db.sqlite3")
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return "sqlite"
    if db["ENGINE"] == "django.db.backends.postgresql":
        if not shutil.which("pg_dump"):
            raise BackupError("pg_dump is not installed; install the PostgreSQL client tools.")
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={work_dir / 'db.dump'}",
              *_pg_arguments(db)], db)
        return "postgresql"
    raise BackupError(f"Backups of {db['ENGINE']} databases are not supported.")


def restore_backup(*, source: Path) -> dict:
    """Replace the database and the stored files with the archive's. The server
    must be stopped."""
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        with tarfile.open(source, "r:gz") as archive:
            archive.extractall(work_dir, filter="data")
        manifest = json.loads((work_dir / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise BackupError(f"{source} is not a backup this version can restore.")
        if manifest["database"] != ("sqlite" if _is_sqlite() else "postgresql"):
            raise BackupError(f"The backup holds a {manifest['database']} database, but "
                              f"DATABASE_URL points at another kind.")
        connections.close_all()
        _restore_database(work_dir, manifest["database"])
        if media_root.exists():
            shutil.rmtree(media_root)
        if (work_dir / "media").is_dir():
            shutil.copytree(work_dir / "media", media_root)
        else:
            media_root.mkdir(parents=True)
        if (work_dir / "secret-key").is_file() and not os.environ.get("SECRET_KEY"):
            key_file = Path(settings.SECRET_KEY_FILE)
            key_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work_dir / "secret-key", key_file)
            os.chmod(key_file, 0o600)
    return manifest


def _restore_database(work_dir: Path, kind: str) -> None:
    db = _database()
    if kind == "sqlite":
        name = Path(db["NAME"])
        for suffix in ("-wal", "-shm"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)
        name.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(work_dir / "db.sqlite3", name)
        return
    if not shutil.which("pg_restore"):
        raise BackupError("pg_restore is not installed; install the PostgreSQL client tools.")
    _run(["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={db['NAME']}",
          *_pg_arguments(db, with_name=False), str(work_dir / "db.dump")], db)


def _pg_arguments(db: dict, *, with_name: bool = True) -> list[str]:
    arguments = []
    if db.get("HOST"):
        arguments.append(f"--host={db['HOST']}")
    if db.get("PORT"):
        arguments.append(f"--port={db['PORT']}")
    if db.get("USER"):
        arguments.append(f"--username={db['USER']}")
    if with_name:
        arguments.append(db["NAME"])
    return arguments


def _run(command: list[str], db: dict) -> None:
    env = {**os.environ, **({"PGPASSWORD": db["PASSWORD"]} if db.get("PASSWORD") else {})}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()[-500:]}")
