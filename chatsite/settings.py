"""One settings module, driven by the environment.

Every value comes from an environment variable read through a small helper
that fails loudly on a malformed value, so a typo in deployment stops the
process at start-up instead of silently falling back to a default.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)
_DEFAULT_DATABASE_URL = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASE_URL = env_str("DATABASE_URL", _DEFAULT_DATABASE_URL)


def _beside_the_database(name: str) -> Path:
    if DATABASE_URL.startswith("sqlite:///") and DATABASE_URL != "sqlite:///:memory:":
        return Path(DATABASE_URL.removeprefix("sqlite:///")).parent / name
    return BASE_DIR / name


# SECRET_KEY signs sessions and file links and derives the relay-key encryption
# key. Without one in the environment, the key `manage.py serve` generated on its
# first start is read from this file; only DEBUG may run on the public
# development key, and chatsite/asgi.py refuses to start on it otherwise.
SECRET_KEY_FILE = Path(env_str("SECRET_KEY_FILE", str(_beside_the_database("secret-key"))))
DEVELOPMENT_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY") or (
    SECRET_KEY_FILE.read_text().strip() if SECRET_KEY_FILE.is_file() else ""
) or DEVELOPMENT_SECRET_KEY
INSECURE_SECRET_KEY = SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "csp",
    "axes",
    "conversations",
]

MIDDLEWARE = [
    "conversations.infra.concurrency.SyncWorkLimit",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the browser's language (Accept-Language)
    "conversations.infra.outage.WhileDatabaseAway",  # the database away: at once, not in turn
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "conversations.accounts.language.UserLanguage",  # the language a person chose wins
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chatsite.csp.SiteCSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Where replies are generated: "process" (in each server process, the embedded
# default) or "workers" (in separate generation worker processes, sharing Redis
# and the database with the web processes; `manage.py serve --workers N` sets it).
GENERATION_MODE = env_str("GENERATION_MODE", "process")
if GENERATION_MODE not in {"process", "workers"}:
    raise ImproperlyConfigured("GENERATION_MODE must be 'process' or 'workers'.")
# How many generation workers there are (`serve --generation-workers`): web processes
# spread the replies they hand over among them (conversations/workers.py).
GENERATION_WORKERS = env_int("GENERATION_WORKERS", 1)
if GENERATION_WORKERS < 1:
    raise ImproperlyConfigured("GENERATION_WORKERS must be 1 or more.")

# How many requests run their synchronous views at once (conversations/infra/concurrency.py):
# more request threads than this take the GIL from the loop that streams replies. Web
# processes that generate nothing have no such loop to protect: no limit (0) there.
SYNC_REQUEST_LIMIT = env_int("SYNC_REQUEST_LIMIT", 1 if GENERATION_MODE == "process" else 0)

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default so a fresh clone runs with nothing else installed;
# DATABASE_URL (e.g. postgres://…) lets several server processes share state.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        # Persistent connections: generations save through database_sync_to_async
        # many times a second, and opening a connection per call costs more
        # than the query.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DATABASE_POOL", True
):
    # Under ASGI each request runs in a thread of its own, so a persistent
    # connection is never reused: every request opened one (about 6 ms on
    # loopback, before its first query). A pool hands connections between
    # request threads (Django's own psycopg pool support; CONN_MAX_AGE must be 0).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2, "max_size": env_int("DATABASE_POOL_SIZE", 20),
        # While the database is away: a page waits this long for a connection, then
        # says the database is not answering (conversations/infra/outage.py), not
        # half a minute; generations and sweeps retry on their own.
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 5),
        # The pool's reconnection attempts back off exponentially (1, 2, 4, 8 s…)
        # while an attempt lasts; ended after 2 s, the next request that needs a
        # connection starts a new one at once. With the default (300 s) the site
        # came back 6-8 s after a 10 s outage, more the longer it lasted.
        "reconnect_timeout": 2,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the streaming checkpoints and page reads
    # interleave without "database is locked" errors.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "conversations.infra.layers.RedisPubSubLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNEL_LAYER_PREFIX", "asgi")},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "conversations.infra.layers.SingleProcessChannelLayer"}
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Sign-in throttling (django-axes) on /login/ and /admin/login/ alike: after
# LOGIN_FAILURE_LIMIT wrong passwords for one username, or from one address,
# that username or address is locked out for LOGIN_LOCKOUT_MINUTES (each further
# try restarts the wait). Staff unlock in the admin (Axes → Access attempts:
# delete the row) or with `manage.py axes_reset_username NAME`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no banner on every command's output; failures are still logged
# The address uvicorn saw (it applies X-Forwarded-For only from trusted proxies);
# never a header a client can set.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# English and Simplified Chinese: catalogues in conversations/locale, compiled by
# `serve` (conversations/infra/translations.py); `manage.py translations` updates them.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "conversations" / "locale"]
LANGUAGE_COOKIE_NAME = "language"
FORMAT_MODULE_PATH = ["chatsite.formats"]  # dates and numbers per language, beside Django's
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Content-Security-Policy (django-csp 4) on every page: scripts, styles and
# sockets from this site only, nothing inline. Pictures: this site and the
# composer's previews (blob:); the conversation page adds data: for the
# pictures models put in their answers (conversations/views.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "blob:"],
        "media-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Behind a proxy that terminates HTTPS (and sets X-Forwarded-Proto): trust its
# header, redirect plain HTTP, send HSTS and keep both cookies to HTTPS, together.
BEHIND_HTTPS_PROXY = env_bool("BEHIND_HTTPS_PROXY", False)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # The preload token only allows submitting the site to browsers' preload list.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# Relay keys are encrypted at rest with a key derived from this secret
# (or SECRET_KEY when unset). Rotating it makes stored keys unreadable.
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY", "")

# The relay created on first start. With no RELAY_BASE_URL the built-in
# simulator is used and labelled as simulated in the UI.
RELAY_BASE_URL = env_str("RELAY_BASE_URL")
RELAY_API_KEY = env_str("RELAY_API_KEY")
RELAY_DIALECT = env_str("RELAY_DIALECT", "openai")
# Relays on this machine or a private network (conversations/relays/addresses.py).
RELAY_ALLOW_PRIVATE = env_bool("RELAY_ALLOW_PRIVATE", False)
RELAY_MODELS = env_list("RELAY_MODELS", [])
RELAY_CONNECT_TIMEOUT = float(env_int("RELAY_CONNECT_TIMEOUT", 10))
RELAY_READ_TIMEOUT = float(env_int("RELAY_READ_TIMEOUT", 120))
RELAY_MAX_RETRIES = env_int("RELAY_MAX_RETRIES", 3)
SIMULATOR_TOKEN_RATE = env_int("SIMULATOR_TOKEN_RATE", 40)

# Streaming: frames per second to browsers and seconds between checkpoints.
STREAM_FRAME_INTERVAL = env_int("STREAM_FRAME_INTERVAL_MS", 50) / 1000
STREAM_CHECKPOINT_INTERVAL = env_int("STREAM_CHECKPOINT_INTERVAL_MS", 1000) / 1000
# A streaming reply whose checkpoint is older than this belongs to a dead process.
# Short, so that pages learn soon that a killed process's reply ended: a live
# reply closed by mistake (its heartbeat held up) is saved as it really ended.
STREAM_STALE_AFTER = env_int("STREAM_STALE_AFTER_S", 8)

# Uploads (issue "Images, audio, video and PDFs").
UPLOAD_LIMITS = {
    "image": env_int("UPLOAD_MAX_IMAGE_MB", 20) * 1024 * 1024,
    "audio": env_int("UPLOAD_MAX_AUDIO_MB", 50) * 1024 * 1024,
    "video": env_int("UPLOAD_MAX_VIDEO_MB", 200) * 1024 * 1024,
    "pdf": env_int("UPLOAD_MAX_PDF_MB", 50) * 1024 * 1024,
}
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 10)
UPLOAD_MAX_MESSAGE_BYTES = env_int("UPLOAD_MAX_MESSAGE_MB", 250) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Where relays can reach this server. When set, files of at least
# MEDIA_LINK_MIN_KB go to URL-carrying parts as signed links valid for
# MEDIA_LINK_TTL_S seconds, instead of inline data URIs.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL")
MEDIA_LINK_MIN_BYTES = env_int("MEDIA_LINK_MIN_KB", 4096) * 1024
MEDIA_LINK_TTL = env_int("MEDIA_LINK_TTL_S", 3600)
# How many earlier turns' files are sent again with the conversation (0 = all).
HISTORY_MAX_MEDIA_TURNS = env_int("HISTORY_MAX_MEDIA_TURNS", 0)
# A cheap model's id (as a relay knows it) that names conversations after their
# first reply; empty: a conversation keeps its first words as its title.
TITLE_MODEL = env_str("TITLE_MODEL", "")
# A model's context window in tokens when the capability catalogue gives none
# (prompt.context_window): the meter under the composer, and what a request carries.
CONTEXT_WINDOW_TOKENS = env_int("CONTEXT_WINDOW_TOKENS", 128_000)
# Room kept in the window for the answer when a conversation sets no max tokens:
# the oldest turns are left out of a request rather than the relay refusing it.
CONTEXT_REPLY_RESERVE_TOKENS = env_int("CONTEXT_REPLY_RESERVE_TOKENS", 8_192)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

# The simulator is mounted at /simulator/ on the app's own server when no
# real relay is configured (or when SIMULATOR_ENABLED=true).
SIMULATOR_ENABLED = env_bool("SIMULATOR_ENABLED", not RELAY_BASE_URL)
# Where this process reaches its own simulator mount; `serve` sets it to its own
# port, so the simulated relay row stores no port that another process would rewrite.
SIMULATOR_URL = env_str("SIMULATOR_URL")
