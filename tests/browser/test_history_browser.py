"""Versions and branches as a person uses them: regenerate and switch, edit and switch back."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import REPLY_TIMEOUT, last_reply, message_box, sign_in, start_chat

WORKING = "Gemini 2.5 Flash (simulated)"
END_OF_ANSWER = "That is the end of the simulated answer."


def _wait_done(page) -> None:
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)


def test_regenerate_a_reply_and_switch_between_its_versions(page, live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "Name a colour")
    _wait_done(page)
    first_id = last_reply(page).get_attribute("id")

    last_reply(page).get_by_role("button", name="Regenerate").click()

    expect(last_reply(page)).not_to_have_id(first_id)
    _wait_done(page)
    second_id = last_reply(page).get_attribute("id")
    expect(page.locator("article.message-assistant")).to_have_count(1)
    expect(last_reply(page).locator(".version-position")).to_have_text("2/2")
    last_reply(page).get_by_role("button", name="Previous").click()
    expect(last_reply(page)).to_have_id(first_id)
    expect(last_reply(page).locator(".version-position")).to_have_text("1/2")
    last_reply(page).get_by_role("button", name="Next").click()
    expect(last_reply(page)).to_have_id(second_id)
    page.reload()  # the version on screen is remembered
    expect(last_reply(page)).to_have_id(second_id)


def test_edit_an_earlier_message_see_the_branch_and_switch_back(page, live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "First question about apples")
    _wait_done(page)
    message_box(page).fill("Second question about pears")
    message_box(page).press("Enter")
    expect(page.locator("article.message-user")).to_have_count(2)
    _wait_done(page)

    first_question = page.locator("article.message-user").first
    first_question.locator("summary", has_text="Edit").click()
    first_question.get_by_label("Edited message").fill("First question about plums")
    first_question.get_by_role("button", name="Send as a new branch").click()

    questions = page.locator("article.message-user")
    expect(questions).to_have_count(1)  # the old branch's later turns left the page
    expect(questions.first).to_contain_text("First question about plums")
    expect(questions.first.locator(".version-position")).to_have_text("2/2")
    _wait_done(page)
    expect(last_reply(page)).to_contain_text("plums")  # the simulator echoes what it got

    questions.first.get_by_role("button", name="Previous").click()

    expect(questions).to_have_count(2)
    expect(questions.first).to_contain_text("First question about apples")
    expect(questions.last).to_contain_text("Second question about pears")
    expect(questions.first.locator(".version-position")).to_have_text("1/2")


def test_search_for_a_word_from_an_old_conversation_and_open_it_at_that_message(page, live_app):
    sign_in(page, live_app)
    old_url = start_chat(page, live_app, WORKING, "Tell me about flamingos 和智谱清言")
    _wait_done(page)
    start_chat(page, live_app, WORKING, "Something else entirely")
    _wait_done(page)

    page.keyboard.press("Control+k")
    expect(page.locator("#sidebar-search-box")).to_be_focused()
    page.keyboard.type("智谱")
    page.keyboard.press("Enter")

    hit = page.locator(".search-hit").filter(has_text="flamingos")
    expect(hit.first).to_be_visible()
    expect(hit.first.locator("mark").first).to_have_text("智谱")
    hit.first.locator("a").click()

    page.wait_for_url(old_url + "?m=*")
    found = page.locator("article.message.found")
    expect(found).to_have_count(1)
    expect(found).to_contain_text("Tell me about flamingos")
    expect(found).to_be_in_viewport()


def test_export_a_conversation_and_open_the_markdown(page, live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "Export me please")
    _wait_done(page)

    page.locator("summary", has_text="Export").click()
    with page.expect_download() as download_info:
        page.locator("#export-markdown").click()

    download = download_info.value
    assert download.suggested_filename == "export-me-please.md"
    text = open(download.path(), encoding="utf-8").read()
    assert text.startswith("# Export me please")
    assert "## You" in text and "Export me please" in text and END_OF_ANSWER in text
