"""Making and editing pictures as a person does, with the simulated Gemini image model.

The simulator returns a real PNG of the aspect ratio and size asked for (1K
at 16:9 is 1360×768), as new-api does: one SSE line carrying a markdown data URI.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import REPLY_TIMEOUT, last_reply, message_box, pick_model, sign_in

MODEL = "Gemini 2.5 Flash Image (simulated)"


def _pictures(page: Page):
    return page.locator("article.message-assistant figure.picture")


def _loaded(page: Page, count: int) -> None:
    """`count` pictures on the page, each fully loaded at its real size."""
    expect(_pictures(page)).to_have_count(count, timeout=REPLY_TIMEOUT)
    page.wait_for_function(
        "n => { const imgs = [...document.querySelectorAll('figure.picture img')];"
        " return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth === 1360"
        " && i.naturalHeight === 768); }", arg=count, timeout=REPLY_TIMEOUT)


def _send(page: Page, text: str) -> None:
    message_box(page).fill(text)
    message_box(page).press("Enter")


def test_a_person_makes_a_picture_downloads_it_edits_it_twice_and_finds_all_in_the_gallery(
    page: Page, live_app, tmp_path
):
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/c/new/")
    pick_model(page, MODEL)
    page.get_by_label("Aspect ratio").select_option("16:9")
    _send(page, "A lighthouse at dusk")
    page.wait_for_url(re.compile(r".*/c/\d+/$"))

    # The picture, at its real size, with its width and height in the page.
    _loaded(page, 1)
    first = _pictures(page).first
    expect(first.locator("img")).to_have_attribute("width", "1360")
    expect(first.locator("img")).to_have_attribute("height", "768")
    expect(last_reply(page)).not_to_contain_text("base64")
    expect(first.get_by_role("link", name="Full size")).to_have_attribute(
        "href", re.compile(r"^/files/a/[0-9a-f-]+/$"))
    first_uuid = first.get_attribute("data-picture")

    with page.expect_download() as download:
        first.get_by_role("link", name="Download").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".png")
    assert saved.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # An edit of the latest picture: the simulator says it received one image.
    expect(page.get_by_label("Aspect ratio")).to_have_value("16:9")
    _send(page, "Make the theme red")
    _loaded(page, 2)
    expect(last_reply(page)).to_contain_text("I received 1 attachment(s)")
    edit = page.locator("article.message-user").last.locator("[data-edit-of]")
    expect(edit).to_have_attribute("data-edit-of", _pictures(page).nth(0).get_attribute(
        "data-picture"))

    # Pick the first picture and edit it again.
    first.get_by_role("button", name="Edit this").click()
    expect(page.locator("#edit-picture-chip")).to_be_visible()
    expect(page.locator("#edit-picture-chip")).to_contain_text("Picture 1")
    _send(page, "Make it blue instead")
    _loaded(page, 3)
    expect(page.locator("#edit-picture-chip")).to_be_hidden()
    chosen = page.locator("article.message-user").last.locator("[data-edit-of]")
    expect(chosen).to_have_attribute("data-edit-of", first_uuid)

    # All three are there after a reload, then in the gallery.
    page.reload()
    _loaded(page, 3)
    page.get_by_role("link", name="Pictures").click()
    expect(page.get_by_role("heading", name="Your pictures")).to_be_visible()
    items = page.locator(".gallery-item")
    expect(items).to_have_count(3)
    expect(items.first).to_contain_text("Make it blue instead")
    expect(items.last).to_contain_text("A lighthouse at dusk")
    expect(items.first).to_contain_text(MODEL)


def test_another_user_cannot_open_someone_elses_picture_or_see_it_in_their_gallery(
    page: Page, live_app
):
    uuid = live_app.shell(
        "import uuid\n"
        "from django.contrib.auth.models import User\n"
        "from django.core.files.base import ContentFile\n"
        "from conversations.models import Attachment, ChatModel, Conversation, Message\n"
        "from conversations.simulator.pictures import make_png\n"
        "alice = User.objects.get(username='alice')\n"
        "model = ChatModel.objects.get(model_id='gemini-2.5-flash-image')\n"
        "chat = Conversation.objects.create(owner=alice, model=model, title='Alice only')\n"
        "reply = Message.objects.create(conversation=chat, role='assistant', status='complete',\n"
        "                               text='![image](picture:1)', model=model)\n"
        "a = Attachment(uuid=uuid.uuid4(), message=reply, owner=alice, kind='image',\n"
        "               mime='image/png', size=1, original_name='secret.png', generated=True,\n"
        "               width=32, height=32)\n"
        "a.file.save('x', ContentFile(make_png(32, 32)), save=True)\n"
        "print(a.uuid)\n"
    ).strip()
    sign_in(page, live_app, "bob")
    response = page.request.get(f"{live_app.url}/files/a/{uuid}/")
    assert response.status == 404
    page.goto(f"{live_app.url}/pictures/")
    expect(page.locator(".gallery-item")).to_have_count(0)
    expect(page.locator("#gallery-empty")).to_be_visible()
