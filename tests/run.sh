#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs them all:
# Debian's Chromium (browser tests), ffmpeg (media conversion), GNU gettext (the
# check that every string has its Chinese translation) and the Noto CJK fonts
# (screenshots of Chinese pages), a virtualenv
# with the project and its test extras, ruff, and pytest — once on SQLite (every
# test, browser ones included) and once more on PostgreSQL for the tests that
# touch the database, when PostgreSQL is running (always under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
for tool in chromium ffmpeg xgettext; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -n "$(fc-list 'Noto Sans CJK SC' 2>/dev/null)" ] || missing="$missing fonts"
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium ffmpeg gettext \
    fonts-noto-cjk >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
.venv/bin/ruff check .

unset DATABASE_URL REDIS_URL RELAY_BASE_URL
.venv/bin/python -m pytest "$@"

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [ -n "${CI:-}" ] || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "--- the database tests again, on PostgreSQL ($PG_URL)"
  DATABASE_URL="$PG_URL" DATABASE_CONN_MAX_AGE=0 .venv/bin/python -m pytest -m "not browser and not services" \
    -p no:cacheprovider -q "$@"
fi
