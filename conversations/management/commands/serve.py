"""Run the app: migrate, create the configured (or simulated) relay, serve."""

from __future__ import annotations

import os
import secrets
import time

import uvicorn
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.core.management.utils import get_random_secret_key

from conversations.relays import setup


class Command(BaseCommand):
    help = "Migrate, set up the relay from the environment, and serve HTTP + WebSockets."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-migrate", action="store_true")
        parser.add_argument("--log-level", default="info")

    def handle(self, *args, host: str, port: int, no_migrate: bool, log_level: str,
               **options) -> None:
        if settings.INSECURE_SECRET_KEY:
            self._generate_secret_key()
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        simulator_url = None
        if settings.SIMULATOR_ENABLED:
            simulator_url = f"http://127.0.0.1:{port}/simulator"
            # This process (and any worker it starts, through the environment) reaches
            # its own mount: see relays.setup.relay_target.
            os.environ["SIMULATOR_URL"] = settings.SIMULATOR_URL = simulator_url
        relay = setup.ensure_default_relay(simulator_url=simulator_url)
        self._first_user()
        shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
        if relay is not None and relay.is_simulated:
            self.stdout.write("No RELAY_BASE_URL set: using the built-in relay simulator.")
        elif relay is not None:
            self.stdout.write(f"Relay: {relay.name} at {relay.base_url}")
        self.stdout.write(self.style.SUCCESS(f"Open http://{shown_host}:{port}/"))
        self.stdout.flush()
        uvicorn.run(
            "chatsite.asgi:application", host=host, port=port, lifespan="on",
            log_level=log_level, proxy_headers=True,
        )

    def _generate_secret_key(self) -> None:
        """The one-command start on a fresh machine: a random SECRET_KEY, kept in
        SECRET_KEY_FILE (beside the database), which every later start reads."""
        path = settings.SECRET_KEY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # exclusive: two processes starting at once agree on the first one's key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = ""
            for _ in range(50):  # the other process may not have written it yet
                key = path.read_text().strip()
                if key:
                    break
                time.sleep(0.1)
        else:
            key = get_random_secret_key()
            with os.fdopen(fd, "w") as file:
                file.write(key + "\n")
            self.stdout.write(f"Generated a SECRET_KEY in {path}; keep the file private.")
        # Settings were read before the file existed; workers started later read the file.
        settings.SECRET_KEY = key
        settings.INSECURE_SECRET_KEY = False

    def _first_user(self) -> None:
        User = get_user_model()
        if User.objects.exists():
            self.stdout.write(
                "Sign in with your account. New users: python manage.py createsuperuser, "
                "or add them in the admin at /admin/."
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "", password)
        self.stdout.write(self.style.WARNING(
            f"First run: created user 'admin' with password '{password}'. Sign in with it, then "
            "change it in the admin (/admin/). More users: python manage.py createsuperuser "
            "or the admin's Users page."
        ))
