"""What a person sees of costs: under each reply, in the header and sidebar, on the costs page."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import REPLY_TIMEOUT, last_reply, message_box, sign_in, start_chat

PRICED = "Gemini 2.5 Flash (simulated)"
UNPRICED = "Private model (no price)"
NO_USAGE = "One-api style relay (no usage)"
MONEY = re.compile(r"\$\d[\d,]*\.\d+")


@pytest.fixture(scope="module", autouse=True)
def _models(live_app):
    live_app.shell(
        "from conversations.models import ChatModel, Relay\n"
        "relay = Relay.objects.get(is_simulated=True)\n"
        "ChatModel.objects.get_or_create(relay=relay, model_id='private-model-x',"
        f" defaults={{'display_name': '{UNPRICED}'}})\n"
        "ChatModel.objects.get_or_create(relay=relay, model_id='gemini-2.5-flash@no_usage',"
        f" defaults={{'display_name': '{NO_USAGE}'}})\n"
    )


def _send(page: Page, text: str) -> None:
    count = page.locator("article.message-assistant").count()
    message_box(page).fill(text)
    message_box(page).press("Enter")
    expect(page.locator("article.message-assistant")).to_have_count(count + 1)
    expect(last_reply(page)).to_have_attribute("data-status", "complete",
                                                timeout=REPLY_TIMEOUT)


def _start(page: Page, live_app, model: str, text: str) -> None:
    start_chat(page, live_app, model, text)
    expect(last_reply(page)).to_have_attribute("data-status", "complete",
                                               timeout=REPLY_TIMEOUT)


def _conversation_total(live_app, page: Page) -> str:
    pk = re.search(r"/c/(\d+)/", page.url)[1]
    return live_app.shell(
        "from conversations.models import Conversation\n"
        "from conversations.billing.money import format_money\n"
        f"print(format_money(Conversation.objects.get(pk={pk}).total_cost, 'USD'))"
    ).strip().splitlines()[-1]


def test_cost_under_each_reply_the_total_and_the_costs_page_with_its_chart_and_csv(
    page: Page, live_app, tmp_path
):
    sign_in(page, live_app)
    _start(page, live_app, PRICED, "How much does this cost?")

    usage = last_reply(page).locator("p.usage")
    expect(usage).to_contain_text(re.compile(r"\d+ prompt"))
    expect(usage).to_contain_text(re.compile(r"\d+ completion"))
    expect(usage.locator(".usage-cost")).to_have_text(MONEY)
    expect(usage).to_contain_text("list price")
    first_cost = usage.locator(".usage-cost").inner_text()

    _send(page, "And a second question, a little longer than the first one.")
    second = last_reply(page).locator("p.usage .usage-cost")
    expect(second).to_have_text(MONEY)

    # The header total follows the replies without a reload, and matches the database.
    total = _conversation_total(live_app, page)
    expect(page.locator("#conversation-cost .conversation-total")).to_have_text(total,
                                                                              timeout=10_000)
    assert total != first_cost
    pk = re.search(r"/c/(\d+)/", page.url)[1]
    expect(page.locator(f"#conversation-item-{pk}-cost")).to_contain_text(total,
                                                                         timeout=10_000)

    # A post's sidebar entry comes without its cost: the moved entry keeps the label
    # shown (read the moment it replaces the old one, before any refresh).
    page.evaluate(f"document.getElementById('conversation-item-{pk}').dataset.before = '1'")
    message_box(page).fill("A third question")
    message_box(page).press("Enter")
    kept = page.wait_for_function(
        f"() => {{ const item = document.getElementById('conversation-item-{pk}');"
        " return item && !item.dataset.before && item.querySelector('.cost').textContent; }",
        timeout=REPLY_TIMEOUT,
    ).json_value()
    assert total in kept
    expect(last_reply(page)).to_have_attribute("data-status", "complete",
                                               timeout=REPLY_TIMEOUT)

    page.get_by_role("link", name="Costs").click()
    page.wait_for_url(re.compile(r".*/costs/$"))
    chart = page.locator("#cost-chart-USD")
    expect(chart).to_be_visible()
    assert chart.locator("rect.bar").count() >= 1
    tallest = max(float(h) for h in chart.locator("rect.bar").evaluate_all(
        "bars => bars.map(b => b.getAttribute('height'))"))
    assert tallest == 160
    expect(page.locator("#cost-by-model")).to_contain_text(PRICED)  # as the chat names it
    expect(page.locator("#cost-by-relay")).to_contain_text("Relay simulator")
    expect(page.locator("#cost-by-conversation")).to_contain_text("How much does this cost?")

    with page.expect_download() as download_info:
        page.locator("#costs-csv").click()
    download = download_info.value
    assert re.match(r"costs-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv$", download.suggested_filename)
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    flash = [r for r in rows if r["model"] == "gemini-2.5-flash" and r["user"] == "alice"]
    assert flash and int(flash[0]["replies"]) >= 2 and float(flash[0]["cost"]) > 0


def test_an_unpriced_model_says_price_unknown_and_a_silent_relay_is_estimated(
    page: Page, live_app
):
    sign_in(page, live_app)
    _start(page, live_app, UNPRICED, "What do you cost?")
    usage = last_reply(page).locator("p.usage")
    expect(usage.locator(".usage-cost.unknown")).to_have_text("price unknown")
    usage.get_by_role("link", name="set a price").click()
    expect(page).to_have_url(re.compile(r".*/admin/conversations/chatmodel/\d+/change/$"))
    expect(page.get_by_text("No list price for 'private-model-x'")).to_be_visible()

    _start(page, live_app, NO_USAGE, "The relay will not count this for you.")
    usage = last_reply(page).locator("p.usage")
    expect(usage.locator(".badge.estimated")).to_have_text("estimated")
    expect(usage.locator(".usage-cost")).to_have_text(MONEY)


def test_a_spent_budget_is_told_plainly_and_nothing_is_sent(page: Page, live_app):
    sign_in(page, live_app, "bob")
    _start(page, live_app, PRICED, "One answer, please.")
    live_app.shell(
        "from decimal import Decimal\n"
        "from django.contrib.auth.models import User\n"
        "from conversations.models import Budget\n"
        "Budget.objects.update_or_create(user=User.objects.get(username='bob'),"
        " defaults={'monthly_limit': Decimal('0.000001')})\n"
    )
    page.reload()
    expect(page.locator(".budget-banner.exceeded")).to_contain_text("is used up")
    replies = page.locator("article.message-assistant").count()

    message_box(page).fill("Another one?")
    message_box(page).press("Enter")

    expect(page.locator("#composer-error")).to_contain_text(
        "Not sent: your monthly budget is used up (see above).")
    # The full words once, in the banner; under the composer only a pointer to it.
    expect(page.locator(".budget-banner.exceeded")).to_contain_text("is used up")
    expect(page.locator("#composer-error")).not_to_contain_text("administrator")
    expect(page.locator("article.message-assistant")).to_have_count(replies)
    expect(message_box(page)).to_have_value("Another one?")
