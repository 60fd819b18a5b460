"""Attachments as a person uses them: pick, preview, remove, send, read the answer, reload.

The relay here is the built-in simulator behind a relay set to the
`image_url-for-all` dialect (new-api's Gemini channel), so an image, an
audio clip, a video and a PDF all reach it; it answers by describing each
part it received.
"""

from __future__ import annotations

import base64
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import REPLY_TIMEOUT, last_reply, message_box, pick_model, sign_in
from tests.fixtures import media

MODEL = "Gemini, every medium as image_url (simulated)"
END_OF_ANSWER = "That is the end of the simulated answer."


@pytest.fixture(scope="module", autouse=True)
def _gemini_channel_relay(live_app):
    live_app.shell(
        "from conversations.models import ChatModel, Relay\n"
        "sim = Relay.objects.get(is_simulated=True)\n"
        "relay, _ = Relay.objects.get_or_create(name='Simulator (Gemini channel)', defaults={\n"
        "    'base_url': sim.base_url, 'api_key': 'sim-local-key',\n"
        "    'dialect': 'image_url-for-all', 'is_simulated': True})\n"
        "ChatModel.objects.get_or_create(relay=relay, model_id='gemini-2.5-flash', defaults={\n"
        f"    'display_name': '{MODEL}', 'accepts_image': True, 'accepts_audio': True,\n"
        "    'accepts_video': True, 'accepts_pdf': True})\n"
    )


@pytest.fixture
def files(tmp_path):
    made = {
        "photo.png": media.png(64, 48),
        "memo.wav": media.wav(1.0),
        "clip.mp4": media.shipped("clip.mp4"),
        "paper.pdf": media.pdf(2),
    }
    paths = {}
    for name, data in made.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths[name] = path
    return paths


def _new_chat(page: Page, live_app) -> None:
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/c/new/")
    pick_model(page, MODEL)


def _previews(page: Page):
    return page.locator("#attachment-previews li.attachment")


def test_a_person_attaches_four_kinds_previews_them_sends_and_finds_them_after_a_reload(
    page: Page, live_app, files, tmp_path
):
    _new_chat(page, live_app)
    extra = tmp_path / "not-this-one.png"
    extra.write_bytes(media.png(8, 8))
    page.set_input_files("#id_files", [str(p) for p in files.values()] + [str(extra)])

    previews = page.locator("#attachment-previews")
    expect(_previews(page)).to_have_count(5)
    image = previews.get_by_role("img", name="photo.png")
    expect(image).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('#attachment-previews img[alt=\"photo.png\"]');"
        " return i && i.complete && i.naturalWidth === 64; }")
    audio = previews.locator("audio")
    expect(audio).to_have_attribute("aria-label", "memo.wav")
    page.wait_for_function(
        "() => { const a = document.querySelector('#attachment-previews audio');"
        " return a && a.readyState >= 1 && Math.abs(a.duration - 1) < 0.1; }")
    expect(previews.locator("video")).to_have_attribute("aria-label", "clip.mp4")
    pdf = _previews(page).filter(has_text="paper.pdf")
    expect(pdf).to_contain_text("PDF · 2 pages")

    previews.get_by_role("button", name="Remove not-this-one.png").click()
    expect(_previews(page)).to_have_count(4)
    expect(previews).not_to_contain_text("not-this-one.png")
    names = page.evaluate("() => Array.from(document.getElementById('id_files').files,"
                          " f => f.name)")
    assert names == ["photo.png", "memo.wav", "clip.mp4", "paper.pdf"]

    message_box(page).fill("What is in these?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/c/\d+/$"))

    reply = last_reply(page)
    text = reply.locator("div.md[id$='-text']")
    expect(text).to_contain_text("I received 4 attachment(s)", timeout=REPLY_TIMEOUT)
    expect(text).to_contain_text("image/png", timeout=REPLY_TIMEOUT)
    expect(text).to_contain_text("PNG 64×48", timeout=REPLY_TIMEOUT)
    expect(text).to_contain_text("WAV 1.0 s", timeout=REPLY_TIMEOUT)
    expect(text).to_contain_text("video/mp4", timeout=REPLY_TIMEOUT)
    expect(text).to_contain_text("PDF 2 pages", timeout=REPLY_TIMEOUT)
    expect(text).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator(".message-warning")).to_have_count(0)
    expect(_previews(page)).to_have_count(0)  # the composer is empty again

    page.reload()
    sent = page.locator("article.message-user").last.locator("ul.attachments")
    expect(sent.locator("li.attachment")).to_have_count(4)
    expect(sent.get_by_role("img", name="photo.png")).to_be_visible()
    expect(sent.locator("audio")).to_have_attribute("aria-label", "memo.wav")
    expect(sent.locator("video")).to_have_attribute("aria-label", "clip.mp4")
    expect(sent.locator("li.attachment-pdf")).to_contain_text("paper.pdf")
    expect(sent.locator("li.attachment-pdf")).to_contain_text("2 pages")

    # Open and download: the files come back byte for byte, typed by what they are.
    src = sent.get_by_role("img", name="photo.png").get_attribute("src")
    shown = page.request.get(f"{live_app.url}{src}")
    assert shown.status == 200
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert shown.body() == files["photo.png"].read_bytes()
    download = sent.get_by_role("link", name="Download paper.pdf").get_attribute("href")
    got = page.request.get(f"{live_app.url}{download}")
    assert got.headers["content-disposition"] == 'attachment; filename="paper.pdf"'
    assert got.body() == files["paper.pdf"].read_bytes()

    # A follow-up question sends the files again with the conversation.
    message_box(page).fill("And the second page?")
    message_box(page).press("Enter")
    follow_up = last_reply(page)
    expect(follow_up.locator("div.md[id$='-text']")).to_contain_text(
        "You said: And the second page?", timeout=REPLY_TIMEOUT)
    expect(follow_up).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    expect(follow_up.locator(".message-warning")).to_have_count(0)


def test_a_refused_file_is_named_nothing_is_sent_and_nothing_is_lost(page: Page, live_app,
                                                                    files, tmp_path):
    _new_chat(page, live_app)
    fake = tmp_path / "holiday.jpg"
    fake.write_bytes(b"MZ\x90\x00" + b"\x00" * 512)  # a Windows program in a photo's name
    page.set_input_files("#id_files", [str(files["photo.png"]), str(fake)])
    expect(_previews(page)).to_have_count(2)
    box = message_box(page)
    box.fill("Where was this?")
    page.get_by_role("button", name="Send").click()

    error = page.locator("#composer-error")
    expect(error).to_contain_text("“holiday.jpg”: its content is a Windows program")
    expect(error).to_contain_text("Nothing was sent")
    assert "/c/new/" in page.url  # no conversation was made
    expect(box).to_have_value("Where was this?")
    expect(_previews(page)).to_have_count(2)

    page.get_by_role("button", name="Remove holiday.jpg").click()
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/c/\d+/$"))
    expect(page.locator("article.message-user").last.locator("li.attachment")).to_have_count(1)


def test_files_can_be_dropped_and_pasted_and_a_large_upload_shows_progress(page: Page,
                                                                          live_app):
    _new_chat(page, live_app)
    png = base64.b64encode(media.png(32, 32)).decode()
    page.evaluate(
        """(png) => {
          const bytes = Uint8Array.from(atob(png), c => c.charCodeAt(0));
          const drop = new DataTransfer();
          drop.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
          const box = document.getElementById("id_text");
          box.dispatchEvent(new DragEvent("dragover", {dataTransfer: drop, bubbles: true,
                                                       cancelable: true}));
          box.dispatchEvent(new DragEvent("drop", {dataTransfer: drop, bubbles: true,
                                                   cancelable: true}));
          const paste = new DataTransfer();
          paste.items.add(new File([bytes], "image.png", {type: "image/png"}));
          box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: paste, bubbles: true,
                                                         cancelable: true}));
        }""",
        png,
    )
    expect(_previews(page)).to_have_count(2)
    expect(_previews(page).first).to_contain_text("dropped.png")
    expect(_previews(page).last).to_contain_text(re.compile(r"pasted-.*\.png"))

    # Slow the upload down so that a person could watch the bar move.
    page.evaluate(
        """() => {
          // 30 s of silence, 48 kHz mono: a real 2.9 MB WAV.
          const rate = 48000, size = rate * 30 * 2;
          const buffer = new ArrayBuffer(44 + size);
          const v = new DataView(buffer);
          const s = (o, t) => [...t].forEach((c, i) => v.setUint8(o + i, c.charCodeAt(0)));
          s(0, "RIFF"); v.setUint32(4, 36 + size, true); s(8, "WAVE"); s(12, "fmt ");
          v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
          v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true);
          v.setUint16(32, 2, true); v.setUint16(34, 16, true); s(36, "data");
          v.setUint32(40, size, true);
          const input = document.getElementById("id_files");
          const all = new DataTransfer();
          Array.from(input.files).forEach(f => all.items.add(f));
          all.items.add(new File([buffer], "long.wav", {type: "audio/wav"}));
          input.files = all.files;
          input.dispatchEvent(new Event("change", {bubbles: true}));
        }"""
    )
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": 1_000_000})
    page.get_by_role("button", name="Send").click()
    bar = page.locator("#upload-progress")
    expect(bar).to_be_visible()
    page.wait_for_function(
        "() => { const b = document.getElementById('upload-progress');"
        " return b && !b.hidden && b.value > 0 && b.value < 100; }", timeout=10_000)
    expect(page.locator("#composer-error")).to_have_count(0, timeout=1)
    page.wait_for_url(re.compile(r".*/c/\d+/$"), timeout=30_000)
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    sent = page.locator("article.message-user").last.locator("li.attachment")
    expect(sent).to_have_count(3)
