"""Simplified Chinese in the relay, media and billing rooms and the admin: what a
Chinese user reads for a relay's error, a silent drop, a refused upload, money,
and the relay's admin page. English stays the default."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.pofile import read_po
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import translation

from conversations.billing.budgets import BudgetStatus, budget_refusal
from conversations.billing.money import format_money
from conversations.media.uploads import UploadRejected, check_uploads
from conversations.models import ChatModel, Dialect, Relay, Usage
from conversations.relays import checks
from conversations.relays.errors import explain_error
from conversations.tokens import SentMedia, SentRequest
from tests.factories import make_conversation, make_relay, make_user

PO = Path(__file__).resolve().parent.parent / "conversations/locale/zh_Hans/LC_MESSAGES/django.po"
ROOMS = ("conversations/relays/", "conversations/media/", "conversations/billing/",
         "conversations/models.py", "conversations/admin.py")
EXHAUSTED = json.dumps({"error": {"message": "该令牌额度已用尽 (request id: 2025abc)",
                                  "type": "new_api_error"}}).encode()


# -- the relay's errors -------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 429])
def test_new_apis_exhausted_quota_reads_in_chinese_with_the_relays_words_first(status):
    with translation.override("zh-hans"):
        error = explain_error(status, EXHAUSTED)
    assert error.message == "中转站提示：该令牌额度已用尽（您的密钥额度已用完）。"
    assert error.relay_message == "该令牌额度已用尽"  # the relay's own words, untouched


def test_english_stays_the_default_for_the_same_answer():
    error = explain_error(403, EXHAUSTED)
    assert error.message == ("The relay says your key has run out of quota "
                             "(relay message: “该令牌额度已用尽”).")


def test_the_explanation_is_chosen_when_it_is_read_not_when_the_module_was_imported():
    # The tables are lazy: one import serves both languages.
    with translation.override("zh-hans"):
        chinese = explain_error(503, b"").message
    english = explain_error(503, b"").message
    assert chinese == "中转站目前没有可用于这个模型的渠道（回答为空）。"
    assert english == "The relay has no channel available for this model right now " \
                      "(with an empty answer)."


def test_an_html_answer_and_an_unknown_status_read_in_chinese():
    with translation.override("zh-hans"):
        page = explain_error(502, b"<html><title>Bad Gateway</title></html>").message
        teapot = explain_error(418, json.dumps({"error": {"message": "teapot"}})).message
    assert page == ("中转站以 HTTP 502 返回了一个网页（“Bad Gateway”），而不是 JSON；"
                    "它前面的代理或网关可能出了故障。")
    assert teapot == "中转站返回了 HTTP 418（中转站消息：“teapot”）。"


# -- what the relay did not say -----------------------------------------------------------


def _dropped_audio_warnings() -> list[str]:
    relay = Relay(name="mixrouter", dialect=Dialect.MEDIA_URL_PARTS)
    model = ChatModel(relay=relay, model_id="gemini-2.5-flash-lite")
    audio = SimpleNamespace(kind="audio", original_name="alloy.wav")
    sent = SentRequest(text_tokens=6, media=[SentMedia(attachment=audio, expected_tokens=400)])
    raw = {"prompt_tokens": 6, "completion_tokens": 3,
           "prompt_tokens_details": {"audio_tokens": 0}}
    usage = Usage(raw=raw, prompt_tokens=6, prompt_audio_tokens=0, estimated=False)
    return checks.silent_drop_warnings(sent=sent, usage=usage, model=model)


def test_a_silent_drop_warning_reads_in_chinese():
    with translation.override("zh-hans"):
        [warning] = _dropped_audio_warnings()
    assert warning.startswith("中转站似乎静默丢弃了一段音频（“alloy.wav”），没有报错：")
    assert "new-api 会忽略 `audio_url` 部分而不报错" in warning
    assert "请尝试把该中转站的方言设为 “image_url-for-all” 后重试。" in warning
    [english] = _dropped_audio_warnings()
    assert "dropped audio (“alloy.wav”) without an error" in english


def test_a_substituted_model_warning_reads_in_chinese():
    relay = Relay(name="r")
    message = SimpleNamespace(model=ChatModel(relay=relay, model_id="gemini-2.5-pro"))
    with translation.override("zh-hans"):
        warning = checks.note_served_model(message=message, served="gemini-2.5-flash")
    assert warning == ("中转站以“gemini-2.5-flash”回答，而不是所要求的“gemini-2.5-pro”："
                       "它可能替换了模型。")


# -- uploads ------------------------------------------------------------------------------


def test_an_upload_refusal_reads_in_chinese():
    relay = Relay(name="r", dialect=Dialect.OPENAI)
    files = [SimpleUploadedFile("empty.png", b""),
             SimpleUploadedFile("drawing.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>")]
    with translation.override("zh-hans"), pytest.raises(UploadRejected) as refused:
        check_uploads(files=files, model=None, relay=relay)
    assert str(refused.value) == (
        "“empty.png”：文件是空的（0 字节）。 “drawing.png”：不接受 SVG 矢量图，因为其中可能"
        "带有脚本；请导出为 PNG 或 JPEG。没有发送任何内容。")


def test_too_many_files_are_refused_in_chinese(settings):
    settings.UPLOAD_MAX_FILES = 1
    files = [SimpleUploadedFile("a.png", b"x"), SimpleUploadedFile("b.png", b"y")]
    with translation.override("zh-hans"), pytest.raises(UploadRejected) as refused:
        check_uploads(files=files, model=None, relay=Relay(name="r"))
    assert str(refused.value) == "一条消息最多附带 1 个文件（这条有 2 个）。没有发送任何内容。"


# -- money --------------------------------------------------------------------------------


def test_money_is_formatted_the_active_languages_way_with_the_same_precision():
    amounts = [(Decimal("12345.6"), "CNY"), (Decimal("0.000658"), "USD"),
               (Decimal("1234567.891"), "USD"), (Decimal("0.5"), "EUR")]
    assert [format_money(a, c) for a, c in amounts] == [
        "¥12,345.60", "$0.000658", "$1,234,567.89", "€0.50"]
    with translation.override("zh-hans"):
        # Grouped by thousands with a comma, as Chinese price lists write them
        # (chatsite/formats/zh_Hans; Django's own zh_Hans format groups nothing).
        assert [format_money(a, c) for a, c in amounts] == [
            "¥12,345.60", "$0.000658", "$1,234,567.89", "€0.50"]
        assert format_money(None) == "价格未知"


def test_the_budget_refusal_reads_in_chinese_with_its_amounts():
    status = BudgetStatus(limit=Decimal(10), currency="USD", spent=Decimal("9.5"),
                          reserved=Decimal("0.6"), in_flight=2, unknown_price_replies=0,
                          other_currencies={})
    with translation.override("zh-hans"):
        text = budget_refusal(status)
    assert text == ("您每月 $10.00 的预算已用完：本月已花费 $10.10（包括 2 条仍在生成的回复）。"
                    "在管理员提高您的预算之前，新消息将被拒绝。")
    assert "(including 2 replies still being written)" in budget_refusal(status)


# -- the admin ----------------------------------------------------------------------------


@pytest.fixture
def chinese_staff(db):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_the_relays_admin_page_shows_its_labels_and_buttons_in_chinese(chinese_staff):
    relay = make_relay("https://relay.example.com", name="qianduoduo")
    page = chinese_staff.get(f"/admin/conversations/relay/{relay.pk}/change/").content.decode()
    for words in ("接口地址", "密钥", "方言", "汇率", "计费方式",
                  "不带 /v1，例如 https://api.example.com",
                  "中转站的 Bearer 密钥。", "导入模型", "探测", "应用上次探测的建议", "尚未探测。",
                  "所有媒体都用 image_url", "标价 × 倍率", "接受图片", "上下文窗口"):
        assert words in page, words
    listing = chinese_staff.get("/admin/conversations/relay/").content.decode()
    for words in ("接口地址", "方言", "从中转站的 /v1/models 导入模型",
                  "探测：用每种方言发送每类一个小文件",
                  "从中转站的 /api/pricing 导入 new-api 倍率"):
        assert words in listing, words


def test_the_admins_action_messages_are_chinese(chinese_staff):
    relay = make_relay("https://relay.example.com", name="qianduoduo")
    page = chinese_staff.post(f"/admin/conversations/relay/{relay.pk}/apply-probe/",
                              follow=True).content.decode()
    assert "Qianduoduo：尚未探测。" in page  # the admin capitalises a message's first letter


def test_the_usage_and_budget_lists_are_headed_in_chinese(chinese_staff):
    owner = make_user("alice")
    conversation = make_conversation(owner, None)
    Usage.objects.create(conversation=conversation, owner=owner, model_name="gpt-4o-mini",
                         prompt_tokens=10, completion_tokens=5, cost=Decimal("0.25"),
                         price_source="list")
    usage = chinese_staff.get("/admin/conversations/usage/").content.decode()
    assert "标价" in usage and "$0.25" in usage
    for words in ("创建时间", "所有者", "模型名称", "提示 token", "补全 token", "费用", "价格来源",
                  "按今天的价格重新计算所选回复的费用"):
        assert words in usage, words
    budgets = chinese_staff.get("/admin/conversations/budget/add/").content.decode()
    for words in ("每月限额", "达到 80% 时提醒", "只有以该货币计的花费计入预算"):
        assert words in budgets, words


def test_an_english_staff_member_still_reads_english(db):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    relay = make_relay("https://relay.example.com", name="qianduoduo")
    page = client.get(f"/admin/conversations/relay/{relay.pk}/change/").content.decode()
    assert "Base URL" in page and "Import models" in page and "接口地址" not in page


# -- the catalogue ------------------------------------------------------------------------


def test_the_labels_made_lazy_need_no_migration(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_every_rooms_translation_keeps_its_placeholders():
    with PO.open("rb") as source:
        catalogue = read_po(source)
    checked = 0
    for message in catalogue:
        if not message.id or not any(place.startswith(ROOMS) for place, _ in message.locations):
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings) and not message.fuzzy, message.id
        wanted = set(re.findall(r"%\((\w+)\)s", ids[-1]))
        for string in strings:
            assert set(re.findall(r"%\((\w+)\)s", string)) == wanted, message.id
        checked += 1
    assert checked > 300
