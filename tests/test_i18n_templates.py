"""The pages in Simplified Chinese for a browser that asks for it (Accept-Language
zh-CN), with dates and numbers in the Chinese format; in English otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import formats, timezone, translation

from conversations import replies
from conversations.models import Conversation, Message
from conversations.templatetags.attachment_tags import duration
from conversations.templatetags.cost_tags import money
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
WHEN = datetime(2026, 3, 5, 12, 7, tzinfo=UTC)


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def conversation(alice) -> Conversation:
    model = make_model(make_relay("http://127.0.0.1:9/never-called", name="Dollar relay"),
                       price_input=Decimal(1), price_output=Decimal(2))
    conversation = make_conversation(alice, model, title="Relay notes")
    question = Message.objects.create(conversation=conversation, role="user",
                                      text="What is a relay?")
    reply = Message.objects.create(conversation=conversation, role="assistant",
                                   status="complete", model=model, parent=question,
                                   text="A relay forwards your requests.")
    replies.record_usage(message=reply, raw={"prompt_tokens": 1_234_567,
                                             "completion_tokens": 2_000})
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=WHEN)
    return conversation


def _get(client: Client, url: str, headers: dict) -> str:
    response = client.get(url, **headers)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def _chinese_number(value) -> str:
    """`value` as the zh-hans number format writes it (Django's has no separator)."""
    with translation.override("zh-hans"):
        return formats.number_format(value, use_l10n=True, force_grouping=True)


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_sign_in_page_is_in_chinese_for_a_chinese_browser():
    html = _get(Client(), reverse("login"), CHINESE)
    assert '<html lang="zh-hans">' in html
    assert "<title>登录 · Relay Workbench</title>" in html
    for chinese in ("登录后即可通过你的中转站对话。", ">用户名</label>", ">密码</label>",
                    ">登录</button>", "没有账号？"):
        assert chinese in html
    for english in ("Sign in to chat", ">Username<", ">Password<", "No account?"):
        assert english not in html
    assert "没有账号？请联系本站的管理员为你添加。" in html
    assert "manage.py" not in html  # staff commands are for the README, not this page


def test_the_sign_in_page_stays_english_for_an_english_browser():
    html = _get(Client(), reverse("login"), ENGLISH)
    assert '<html lang="en">' in html
    assert "Sign in to chat with your relays." in html and ">Sign in</button>" in html
    assert "登录" not in html


def test_the_new_chat_page_in_chinese(alice, conversation):
    html = _get(_signed_in(alice), reverse("conversation_new"), CHINESE)
    for chinese in ("<h1>新对话</h1>", "+ 新对话", 'placeholder="输入消息…"', ">发送</button>",
                    ">退出登录</button>", ">图片库</a>", ">费用</a>", ">系统提示词</label>",
                    "<kbd>Enter</kbd> 发送",
                    "在下方写下第一条消息；模型和参数在上方，点一下即可调整。"):
        assert chinese in html
    for english in ("New chat", "Write a message", ">Send<", "Sign out", "System prompt",
                    "new line", "Pick a model"):
        assert english not in html
    # The sidebar's date in the Chinese format: 3月5日 12:07 (chatsite/formats/zh_Hans).
    local = timezone.localtime(WHEN)
    assert f"{local.month}月{local.day}日 {local:%H:%M}" in html
    assert "Relay notes" in html  # titles are not translated


def test_a_conversation_page_in_chinese(alice, conversation):
    html = _get(_signed_in(alice), reverse("conversation", args=[conversation.pk]), CHINESE)
    for chinese in (">设置</summary>", ">重命名</summary>", ">置顶</button>", ">归档</button>",
                    ">导出</summary>", ">删除</summary>", ">永久删除</button>",
                    ">编辑</summary>", ">重新生成</button>",
                    ">复制</button>", f"提示 {_chinese_number(1_234_567)}",
                    f"补全 {_chinese_number(2_000)}", "token 上下文窗口",
                    'aria-label="对话记录"', "合计"):
        assert chinese in html
    for english in (">Settings<", ">Rename<", ">Pin<", ">Archive<", ">Regenerate<",
                    ">Copy<", " prompt<", "tokens of history", "-token window", "No cost yet"):
        assert english not in html
    # What the model and the person wrote, names and model ids stay as they are.
    for kept in ("What is a relay?", "A relay forwards your requests.", "gemini-2.5-flash",
                 "Relay notes"):
        assert kept in html


def test_a_conversation_page_in_english(alice, conversation):
    html = _get(_signed_in(alice), reverse("conversation", args=[conversation.pk]), ENGLISH)
    for english in (">Settings</summary>", ">Regenerate</button>", "1,234,567 prompt",
                    "2,000 completion", "tokens of history", "Total"):
        assert english in html
    assert "设置" not in html and "重新生成" not in html
    local = timezone.localtime(WHEN)
    assert f"{local:%b} {local.day} {local:%H:%M}" in html  # the sidebar: Mar 5 12:07


def test_the_costs_page_in_chinese_with_chinese_dates(alice, conversation):
    html = _get(_signed_in(alice), reverse("costs"), CHINESE)
    for chinese in ('<h1 id="costs-title">费用</h1>', ">按模型</h2>", ">按中转站</h2>",
                    ">费用最高的对话</h2>", "每日花费", ">下载 CSV</a>", "条回复",
                    "不同币种的金额从不相加。", ">期间</label>"):
        assert chinese in html
    for english in ("Per model", "Per relay", "Spending per day", "Download CSV",
                    "prompt /", "Nothing was spent"):
        assert english not in html
    assert "Dollar relay" in html  # relay names stay
    today = timezone.localdate()
    assert f"<span>{today.year}年{today.month}月{today.day}日</span>" in html  # the axis
    assert f"{today.year}年{today.month}月{today.day}日 " in html  # a bar: …日 星期二：$1.24
    assert "日 星期" in html and "：$" in html
    assert today.strftime("%-d %b %Y") not in html


def test_the_costs_page_in_english(alice, conversation):
    html = _get(_signed_in(alice), reverse("costs"), ENGLISH)
    for english in (">Per model</h2>", "Spending per day", "1 reply ·",
                    "1,234,567 prompt / 2,000 completion tokens"):
        assert english in html
    today = timezone.localdate()
    assert today.strftime("%-d %b %Y") in html
    assert "费用" not in html


def test_the_budget_and_plural_strings_read_naturally_in_chinese(alice, conversation):
    for _ in range(2):
        Message.objects.create(conversation=conversation, role="assistant",
                               status="complete", model=conversation.model, text="again")
    html = _get(_signed_in(alice), reverse("export"), CHINESE)
    assert "你共有 1 个对话。" in html
    html = _get(_signed_in(alice), reverse("export"), ENGLISH)
    assert "You have 1 conversation." in html
    make_conversation(alice, conversation.model, title="Second")
    html = _get(_signed_in(alice), reverse("export"), ENGLISH)
    assert "You have 2 conversations." in html


def test_money_and_durations_follow_the_language():
    amount = Decimal("12345.6789")
    with translation.override("en"):
        assert money(amount, "USD") == "$12,345.68"
        assert money(Decimal("0.000658"), "CNY") == "¥0.000658"
        assert money(Decimal("3.5"), "XYZ") == "3.50 XYZ"
        assert money(None) == "price unknown"
        assert duration(4.56) == "4.6 s" and duration(12.4) == "12 s"
        assert duration(timedelta(minutes=2, seconds=5).total_seconds()) == "2:05"
    with translation.override("zh-hans"):
        assert money(amount, "USD") == f"${_chinese_number(Decimal('12345.68'))}"
        assert money(Decimal("0.000658"), "CNY") == "¥0.000658"
        assert money(None) == "价格未知"
        assert duration(4.56) == "4.6 秒"
