"""Probing a relay against simulator relays that behave like each family."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from conversations.billing.prices import list_usd
from conversations.models import RelayProbe
from conversations.relays.probe import ProbeReport, apply_probe, run_probe
from tests.factories import make_model, make_relay

pytestmark = pytest.mark.django_db(transaction=True)


def _verdicts(probe: RelayProbe, model_id: str) -> dict[tuple[str, str], str]:
    report = ProbeReport.from_json(probe.report)
    model = next(m for m in report.models if m.model_id == model_id)
    return {(a.kind, a.dialect): a.verdict for a in model.attempts}


def test_a_new_api_relay_that_drops_audio_url_is_found_out_and_a_dialect_that_carries_it_proposed(
    simulator,
):
    # Seed 000's relay: new-api, media-url-parts; audio_url and video_url objects vanish.
    relay = make_relay(simulator.url + "/newapi", dialect="media-url-parts", name="mixrouter")
    make_model(relay, "gemini-2.5-flash-lite")
    probe = run_probe(relay=relay, price=list_usd)
    verdicts = _verdicts(probe, "gemini-2.5-flash-lite")
    assert verdicts[("audio", "media-url-parts")] == "dropped"
    assert verdicts[("video", "media-url-parts")] == "dropped"
    assert verdicts[("image", "media-url-parts")] == "counted"
    assert verdicts[("audio", "image_url-for-all")] == "counted"
    assert verdicts[("audio", "openai")] == "counted"
    assert verdicts[("video", "image_url-for-all")] == "counted"
    assert probe.proposed_dialect == "image_url-for-all"
    report = ProbeReport.from_json(probe.report)
    assert report.models[0].proposed_flags == {"image": True, "audio": True, "video": True,
                                               "pdf": True}
    text = "\n".join(report.lines())
    assert "dropped it without a word" in text
    assert "audio is counted only in" not in text  # counted in the proposed dialect
    # The probe's requests are recorded, and it stayed within its budget.
    # one request per distinct spelling: text; image_url; input_audio, image_url, audio_url;
    # image_url, video_url; file, image_url
    assert len(simulator.requests) == 1 + 1 + 3 + 2 + 2
    assert probe.cost_usd is not None and Decimal(0) < probe.cost_usd <= Decimal("0.002")
    assert report.models[0].baseline.first_token_s is not None


def test_applying_a_probe_sets_the_dialect_and_flags_staff_confirmed(simulator):
    relay = make_relay(simulator.url + "/newapi", dialect="media-url-parts")
    model = make_model(relay, "gemini-2.5-flash-lite")
    probe = run_probe(relay=relay, price=list_usd)
    relay.refresh_from_db()
    assert relay.dialect == "media-url-parts"  # nothing changes before staff apply it
    changes = apply_probe(probe=probe)
    relay.refresh_from_db()
    model.refresh_from_db()
    assert relay.dialect == "image_url-for-all"
    assert model.accepted_kinds == {"text", "image", "audio", "video", "pdf"}
    assert any("dialect media-url-parts → image_url-for-all" in c for c in changes)
    assert RelayProbe.objects.get(pk=probe.pk).applied_at is not None



def test_a_model_claiming_images_only_is_probed_with_an_image_only(simulator):
    relay = make_relay(simulator.url, dialect="openai")
    make_model(relay, "gpt-4o-mini", accepts_audio=False, accepts_video=False,
               accepts_pdf=False)
    probe = run_probe(relay=relay, price=list_usd)
    assert {kind for kind, _ in _verdicts(probe, "gpt-4o-mini")} == {"text", "image"}
    assert probe.proposed_dialect == "openai"  # it carries everything claimed: kept


def test_a_refusing_relay_is_reported_with_its_words(simulator):
    relay = make_relay(simulator.url, dialect="openai")
    make_model(relay, "gemini-2.5-flash@fail=401,message=该令牌额度已用尽")
    probe = run_probe(relay=relay, price=list_usd)
    text = "\n".join(ProbeReport.from_json(probe.report).lines())
    assert "refused" in text and "该令牌额度已用尽" in text
    assert "refused even a text-only request" in text


def test_a_relay_that_substitutes_models_is_named_in_the_report(simulator):
    relay = make_relay(simulator.url + "/substitutes", dialect="image_url-for-all")
    make_model(relay, "gemini-2.5-pro", accepts_audio=False, accepts_video=False,
               accepts_pdf=False)
    probe = run_probe(relay=relay, price=list_usd)
    text = "\n".join(ProbeReport.from_json(probe.report).lines())
    assert "answered as “gemini-2.5-flash-lite”" in text


def test_the_probe_relay_command_prints_the_report_and_applies_on_request(simulator):
    relay = make_relay(simulator.url + "/newapi", dialect="media-url-parts", name="seed000")
    make_model(relay, "gemini-2.5-flash-lite")
    out = io.StringIO()
    call_command("probe_relay", "seed000", "--apply", stdout=out)
    printed = out.getvalue()
    assert "Relay “seed000”" in printed and "Proposed dialect: image_url-for-all" in printed
    assert "Applied: dialect media-url-parts → image_url-for-all" in printed
    relay.refresh_from_db()
    assert relay.dialect == "image_url-for-all"


def test_staff_probe_a_relay_from_the_admin_read_the_report_and_apply_it(simulator):
    import time

    from django.test import Client

    from tests.factories import make_user

    staff = make_user("root", is_staff=True, is_superuser=True)
    relay = make_relay(simulator.url + "/newapi", dialect="media-url-parts", name="seed000")
    make_model(relay, "gemini-2.5-flash-lite")
    client = Client()
    client.force_login(staff)
    page = client.post("/admin/conversations/relay/", {
        "action": "probe_relays", "_selected_action": [relay.pk]}, follow=True)
    assert "probe started" in page.content.decode()
    deadline = time.monotonic() + 30
    while not RelayProbe.objects.filter(relay=relay).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    page = client.get(f"/admin/conversations/relay/{relay.pk}/change/").content.decode()
    assert "Proposed dialect: image_url-for-all" in page and "not applied" in page
    assert "sk-test-secret-key" not in page
    # Priced by billing's admin: the report says what the probe cost.
    assert "at list price" in page and "cost unknown" not in page
    client.post("/admin/conversations/relay/", {
        "action": "apply_last_probe", "_selected_action": [relay.pk]})
    relay.refresh_from_db()
    assert relay.dialect == "image_url-for-all"


def test_the_probe_admin_is_staff_only(simulator):
    from django.test import Client

    from tests.factories import make_user

    relay = make_relay(simulator.url)
    client = Client()
    client.force_login(make_user("alice"))
    response = client.post("/admin/conversations/relay/", {
        "action": "probe_relays", "_selected_action": [relay.pk]})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not simulator.requests


def test_the_relays_own_page_imports_probes_and_applies_for_staff(simulator):
    import time

    from django.test import Client

    from tests.factories import make_user

    staff = make_user("root", is_staff=True, is_superuser=True)
    relay = make_relay(simulator.url + "/newapi", dialect="media-url-parts", name="seed000")
    client = Client()
    client.force_login(staff)
    page = client.get(f"/admin/conversations/relay/{relay.pk}/change/").content.decode()
    assert 'id="relay-import"' in page and 'id="relay-probe"' in page
    client.post(f"/admin/conversations/relay/{relay.pk}/import/")
    lite = relay.models.get(model_id="gemini-2.5-flash-lite")
    assert lite.accepts_audio  # from the catalogue and the relay's list
    relay.models.exclude(pk=lite.pk).delete()
    client.post(f"/admin/conversations/relay/{relay.pk}/probe/")
    deadline = time.monotonic() + 30
    while not RelayProbe.objects.filter(relay=relay).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    client.post(f"/admin/conversations/relay/{relay.pk}/apply-probe/")
    relay.refresh_from_db()
    assert relay.dialect == "image_url-for-all"
    # Not for someone who is not staff, nor by GET.
    assert client.get(f"/admin/conversations/relay/{relay.pk}/probe/").status_code == 405
    other = Client()
    other.force_login(make_user("alice"))
    assert other.post(f"/admin/conversations/relay/{relay.pk}/probe/").status_code == 302
    assert RelayProbe.objects.filter(relay=relay).count() == 1


def test_a_new_relay_needs_a_key_and_prices_cannot_be_negative():
    from django.test import Client

    from tests.factories import make_user

    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    form = {"name": "New relay", "base_url": "https://relay.example.com", "api_key": "",
            "dialect": "openai", "is_active": "on", "currency": "USD", "exchange_rate": "1",
            "billing_mode": "list", "price_multiplier": "1", "group_ratio": "1",
            "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0"}
    page = client.post("/admin/conversations/relay/add/", form).content.decode()
    assert "Give the relay&#x27;s key" in page
    page = client.post("/admin/conversations/relay/add/",
                       {**form, "api_key": "sk-new", "exchange_rate": "-1"}).content.decode()
    assert "cannot be negative" in page
    response = client.post("/admin/conversations/relay/add/", {**form, "api_key": "sk-new"})
    assert response.status_code == 302


def test_staff_probe_only_the_models_they_choose_from_the_model_list(simulator):
    import time

    from django.test import Client

    from tests.factories import make_user

    staff = make_user("root", is_staff=True, is_superuser=True)
    relay = make_relay(simulator.url + "/newapi", dialect="media-url-parts", name="seed000")
    chosen = make_model(relay, "gemini-2.5-flash-lite")
    make_model(relay, "gemini-2.5-flash")  # not chosen: not probed
    client = Client()
    client.force_login(staff)
    page = client.post("/admin/conversations/chatmodel/", {
        "action": "probe_models", "_selected_action": [chosen.pk]}, follow=True)
    assert "probe of 1 model started" in page.content.decode()
    deadline = time.monotonic() + 30
    while not RelayProbe.objects.filter(relay=relay).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    report = RelayProbe.objects.get(relay=relay).report
    probed = [m["model_id"] for m in report["models"]]
    assert probed == ["gemini-2.5-flash-lite"]
    assert RelayProbe.objects.get(relay=relay).cost_usd is not None  # priced by billing
