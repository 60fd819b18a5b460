"""The interface in English and Simplified Chinese: every string translated,
the browser's language followed, a person's choice remembered."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import translation

from conversations.accounts import language
from conversations.infra.translations import compile_catalogues, untranslated
from conversations.models import Preferences

pytestmark = pytest.mark.django_db

def test_every_string_in_the_code_and_templates_has_a_chinese_translation(capsys):
    """Extracts the messages afresh (in a copy of the project) and fails on any
    string without a translation, or with one marked fuzzy."""
    call_command("translations", check=True)
    assert "0 untranslated" in capsys.readouterr().out


def test_the_check_fails_on_a_string_nobody_translated(tmp_path, capsys):
    project = tmp_path / "site"
    project.mkdir()
    for name in ["manage.py", "chatsite", "conversations", "templates", "static"]:
        source = Path(settings.BASE_DIR) / name
        if source.is_dir():
            shutil.copytree(source, project / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy2(source, project / name)
    (project / "templates" / "canary.html").write_text(
        '{% load i18n %}<p>{% translate "A sentence nobody translated yet" %}</p>')

    with override_settings(BASE_DIR=project), pytest.raises(CommandError, match="1 string"):
        call_command("translations", check=True)
    assert "A sentence nobody translated yet" in capsys.readouterr().out


def test_untranslated_lists_empty_and_fuzzy_entries(tmp_path):
    po = tmp_path / "django.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        '#: a.html\nmsgid "Done"\nmsgstr "完成"\n\n'
        '#: b.html\nmsgid "Empty"\nmsgstr ""\n\n'
        '#: c.html\n#, fuzzy\nmsgid "Guessed"\nmsgstr "猜的"\n\n'
        '#: d.py\nmsgid "%(n)s file"\nmsgid_plural "%(n)s files"\nmsgstr[0] ""\n',
        encoding="utf-8",
    )
    missing = untranslated(po)
    assert len(missing) == 3
    assert any("'Empty'" in line for line in missing)
    assert any("'Guessed'" in line and "[fuzzy]" in line for line in missing)
    assert any("%(n)s file" in line for line in missing)


def test_a_catalogue_is_compiled_once_and_again_when_its_source_changes(tmp_path):
    messages = tmp_path / "zh_Hans" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    po = messages / "django.po"
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                  'msgid "Send"\nmsgstr "发送"\n', encoding="utf-8")
    assert compile_catalogues(tmp_path) == 1
    assert compile_catalogues(tmp_path) == 0  # up to date
    mo = po.with_suffix(".mo")
    assert "发送".encode() in mo.read_bytes()
    stamp = mo.stat().st_mtime
    po.write_text(po.read_text(encoding="utf-8").replace("发送", "发出"), encoding="utf-8")
    os.utime(po, (stamp + 5, stamp + 5))
    assert compile_catalogues(tmp_path) == 1
    assert "发出".encode() in mo.read_bytes()


# -- which language a page is in -------------------------------------------------


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password="pw-alice-123")


def test_a_browser_set_to_chinese_gets_the_sign_in_page_in_chinese():
    page = Client(HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5").get(reverse("login"))
    html = page.content.decode()
    assert '<html lang="zh-hans">' in html
    assert "语言" in html  # the language menu's label


def test_an_english_browser_gets_english():
    html = Client(HTTP_ACCEPT_LANGUAGE="en-GB,en").get(reverse("login")).content.decode()
    assert '<html lang="en">' in html
    assert ">Language<" in html


def test_the_language_chosen_from_the_menu_wins_over_the_browser_and_follows_the_person(alice):
    client = Client(HTTP_ACCEPT_LANGUAGE="en-US")
    client.force_login(alice)

    response = client.post(reverse("choose_language"),
                           {"language": "zh-hans", "next": reverse("login")})

    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert Preferences.objects.get(user=alice).language == "zh-hans"
    assert '<html lang="zh-hans">' in client.get(reverse("login")).content.decode()
    # Another device, another browser language: the choice comes with the sign-in.
    elsewhere = Client(HTTP_ACCEPT_LANGUAGE="en-US")
    elsewhere.post(reverse("login"), {"username": "alice", "password": "pw-alice-123"})
    assert '<html lang="zh-hans">' in elsewhere.get(reverse("login")).content.decode()
    assert language.for_user(alice.pk) == "zh-hans"


def test_choosing_follow_the_browser_again_forgets_the_choice(alice):
    client = Client(HTTP_ACCEPT_LANGUAGE="en-US")
    client.force_login(alice)
    client.post(reverse("choose_language"), {"language": "zh-hans"})
    client.post(reverse("choose_language"), {"language": ""})
    assert Preferences.objects.get(user=alice).language == ""
    assert '<html lang="en">' in client.get(reverse("login")).content.decode()


def test_the_menu_never_sends_anyone_to_another_site(alice):
    client = Client()
    client.force_login(alice)
    response = client.post(reverse("choose_language"),
                           {"language": "en", "next": "https://evil.example/"})
    assert response["Location"] == reverse("home")


def test_work_done_without_a_request_uses_the_browser_language_until_one_is_chosen(alice):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    client.force_login(alice)
    assert language.for_user(alice.pk) == settings.LANGUAGE_CODE  # nothing seen yet
    client.get(reverse("login"))
    client.get(reverse("login"))  # noted once, not written on every request
    assert language.for_user(alice.pk) == "zh-hans"
    client.post(reverse("choose_language"), {"language": "en"})
    assert language.for_user(alice.pk) == "en"


def test_a_socket_follows_the_session_choice_then_its_accept_language():
    headers = [(b"accept-language", b"zh-TW,zh;q=0.8")]
    assert language.for_scope({"headers": headers, "session": {}}) == "zh-hans"
    assert language.for_scope({"headers": headers, "session": {"language": "en"}}) == "en"
    assert language.for_scope({"headers": [], "session": {}}) == settings.LANGUAGE_CODE


def test_the_javascript_catalogue_is_served_in_the_page_language():
    response = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get(reverse("javascript-catalog"))
    assert response.status_code == 200
    assert "gettext" in response.content.decode()
    with translation.override("zh-hans"):
        assert translation.gettext("Language") == "语言"
