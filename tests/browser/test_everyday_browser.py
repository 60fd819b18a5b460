"""The everyday screen, on a desktop and on a phone: the header's model picker,
files refused the moment they are picked, a slim phone layout that keeps Send
in sight with five files, and delete confirmed on the page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    REPLY_TIMEOUT,
    last_reply,
    message_box,
    pick_model,
    sign_in,
    start_chat,
)
from tests.fixtures import media

WORKING = "Gemini 2.5 Flash (simulated)"
IMAGES_ONLY = "GPT-4o mini (simulated)"  # takes pictures, no audio
FAILING = "Out-of-quota key (simulated failure)"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def files(tmp_path):
    made = {}
    for n in range(5):
        path = tmp_path / f"photo-{n}.png"
        path.write_bytes(media.png(640, 480, color=(40 * n, 90, 160)))
        made[f"photo-{n}"] = path
    voice = tmp_path / "voice.wav"
    voice.write_bytes(media.wav(1.0))
    made["voice"] = voice
    return made


def _finished(page: Page) -> None:
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)


def test_the_header_picker_switches_the_model_for_the_next_message(page: Page, live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "First with Flash")
    _finished(page)

    pick_model(page, IMAGES_ONLY, label="Model for the next replies")
    expect(page.locator("#settings-form select[name=model] option[selected]")).to_contain_text(
        IMAGES_ONLY)  # the settings panel follows: saving it later keeps the new model
    message_box(page).fill("Now with the other one")
    message_box(page).press("Enter")
    expect(page.locator("article.message-assistant")).to_have_count(2, timeout=REPLY_TIMEOUT)
    _finished(page)
    expect(last_reply(page).locator(".who")).to_have_text(IMAGES_ONLY)
    page.reload()
    expect(page.locator("#header-model option:checked")).to_contain_text(IMAGES_ONLY)


def test_a_file_the_model_cannot_take_is_refused_before_any_upload(page: Page, live_app, files):
    sign_in(page, live_app, "bob")
    page.goto(f"{live_app.url}/c/new/")
    pick_model(page, IMAGES_ONLY)
    posts = []
    page.on("request", lambda request: posts.append(request.url)
            if request.method == "POST" else None)

    page.locator("input[type=file]").set_input_files([str(files["voice"]),
                                                      str(files["photo-0"])])

    error = page.locator("#composer-error")
    expect(error).to_contain_text("“voice.wav” cannot be sent")
    expect(error).to_contain_text("Pick a model that does")  # what someone not staff can do
    expect(error).not_to_contain_text("admin")
    expect(page.locator("#attachment-previews .attachment")).to_have_count(1)  # the photo only
    assert posts == []  # nothing was sent
    # Picking a model that takes audio lets it through.
    pick_model(page, WORKING)
    page.locator("input[type=file]").set_input_files(str(files["voice"]))
    expect(page.locator("#attachment-previews .attachment")).to_have_count(2)
    expect(page.locator("#composer-error")).to_have_count(0)


def test_failing_simulator_models_are_not_offered_to_everyone(page: Page, live_app):
    sign_in(page, live_app, "bob")
    page.goto(f"{live_app.url}/c/new/")
    expect(page.get_by_label("Model", exact=True).locator("option")).not_to_have_text(
        [re.compile(re.escape(FAILING))])
    options = page.get_by_label("Model", exact=True).locator("option").all_inner_texts()
    assert options and not any(FAILING in o for o in options)
    assert any(o.startswith(WORKING + " · ") and "video" in o for o in options)


def test_a_phone_keeps_send_in_sight_with_five_files_and_a_slim_header(browser, live_app,
                                                                        files):
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "A phone chat with a long first message title")
    _finished(page)

    header = page.locator("#conversation-head").bounding_box()
    assert header["height"] <= 140, header  # was about 240 of 844 px
    page.locator("input[type=file]").set_input_files(
        [str(files[f"photo-{n}"]) for n in range(5)])
    expect(page.locator("#attachment-previews .attachment")).to_have_count(5)
    composer = page.locator("#composer").bounding_box()
    assert composer["height"] <= 260, composer
    send = page.get_by_role("button", name="Send")
    expect(send).to_be_in_viewport()
    box = send.bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"]
    width = page.locator("#id_text").bounding_box()["width"]
    assert width >= 200, width  # was about 170 px
    expect(page.locator(".composer-hint .idle-note")).to_be_hidden()  # no keyboard hints
    print(f"phone: header {header['height']:.0f} px, composer with five files "
          f"{composer['height']:.0f} px, message box {width:.0f} px wide")
    context.close()


def test_delete_asks_on_the_page_and_never_opens_a_browser_dialog(page: Page, live_app):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, live_app)
    url = start_chat(page, live_app, WORKING, "Delete me afterwards")
    _finished(page)

    page.locator("#delete-menu > summary").click()
    confirm = page.get_by_role("button", name="Delete for good")
    expect(confirm).to_be_visible()
    expect(page.locator("#delete-question")).to_contain_text("Delete me afterwards")
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()  # changed their mind

    page.locator("#delete-menu > summary").click()
    confirm.click()
    expect(page).not_to_have_url(url, timeout=REPLY_TIMEOUT)
    page.wait_for_load_state()
    assert dialogs == []
    assert page.request.get(url).status == 404


def test_the_theme_follows_the_system_and_can_be_switched(browser, live_app):
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    sign_in(page, live_app, "bob")
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "dark")  # the system's
    dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")

    page.get_by_label("Theme").select_option("light")
    expect(html).to_have_attribute("data-theme", "light")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != dark_bg
    page.reload()
    expect(html).to_have_attribute("data-theme", "light")  # kept in this browser
    expect(page.get_by_label("Theme")).to_have_value("light")

    page.get_by_label("Theme").select_option("system")
    expect(html).to_have_attribute("data-theme", "dark")
    page.emulate_media(color_scheme="light")
    expect(html).to_have_attribute("data-theme", "light")  # follows a change of the system
    context.close()
