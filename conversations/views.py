"""Thin views: authorise → validate → one service call → render."""

from __future__ import annotations

from csp.decorators import csp_update
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, pgettext
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from conversations import services
from conversations.billing.budgets import BudgetSpent, budget_status
from conversations.context import context_meter
from conversations.errors import ReplyInFlight, ServiceError
from conversations.forms import (
    ConversationSettingsForm,
    MessageForm,
    ModelPickForm,
    NewConversationForm,
)
from conversations.fragments import message_list, messages_upsert, render_window, upsert
from conversations.media.uploads import prepare_uploads
from conversations.models import SIMULATED_FAILURE, ChatModel, Conversation
from conversations.selectors import (
    branch_window,
    get_conversation_for_user,
    get_message_for_user,
    sidebar_conversations,
)

UNPROCESSABLE = 422


def _page_context(request: HttpRequest, **extra) -> dict:
    return {
        "conversations": sidebar_conversations(user=request.user),
        "has_models": ChatModel.objects.usable().exists(),
        "has_image_models": ChatModel.objects.usable().filter(outputs_images=True).exists(),
        **extra,
    }


def _composer_error(message: str, *, until_reply_ends: bool = False) -> HttpResponse:
    """The error under the composer. `until_reply_ends`: the page removes it when
    the reply in flight ends (static/js/chat.js); any other error stays."""
    marker = mark_safe(" data-until-reply-ends" if until_reply_ends else "")  # noqa: S308
    html = upsert(
        "composer-errors",
        format_html('<p id="composer-error" role="alert"{}>{}</p>', marker, message),
    )
    return HttpResponse(html, status=UNPROCESSABLE)


def _refused(exc: ServiceError, request: HttpRequest | None = None) -> HttpResponse:
    if isinstance(exc, BudgetSpent) and request is not None:
        # The banner says it all (in case it was not on the page yet); the composer points to it.
        response = _composer_error(exc.short)
        response.content += render_to_string(
            "conversations/_budget_banner.html",
            {"budget": budget_status(user=request.user), "oob": True}, request=request,
        ).encode()
        return response
    return _composer_error(exc.message, until_reply_ends=isinstance(exc, ReplyInFlight))


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: a post Django refused before any view ran, said in plain words
    where the person sees it (the composer for HTMX posts, a page otherwise)."""
    message = _refusal_words(exception)
    if request.headers.get("HX-Request") == "true":
        return _composer_error(message)
    return render(request, "400.html", {"message": message}, status=400)


def _refusal_words(exception: Exception | None) -> str:
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        return gettext(
            "This message is too long to send: its text and settings can be at most "
            "%(limit)s MB (attached files have their own limits). Nothing was sent."
        ) % {"limit": f"{limit:g}"}
    if isinstance(exception, TooManyFilesSent):
        return gettext(
            "Too many files in one message: the server reads at most %(limit)s. "
            "Nothing was sent."
        ) % {"limit": settings.DATA_UPLOAD_MAX_NUMBER_FILES}
    if isinstance(exception, TooManyFieldsSent):
        return gettext("This form sent more fields than the server accepts. Nothing was sent.")
    if isinstance(exception, MultiPartParserError):
        return gettext("The server could not read what was sent (the upload was malformed or "
                       "cut off). Nothing was sent; try again.")
    return gettext("The server could not understand that request. Nothing was sent; "
                   "try again.")


# Replaces a shown error by id (an upsert never removes anything).
_NO_COMPOSER_ERROR = '<p id="composer-error" hidden></p>'


def _form_errors(form) -> str:
    return " ".join(
        pgettext("a form field's error", "%(field)s: %(error)s")
        % {"field": form.fields[name].label, "error": error}
        if name in form.fields and form.fields[name].label else str(error)
        for name, errors in form.errors.items()
        for error in errors
    )


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    latest = Conversation.objects.for_user(request.user).in_sidebar().first()
    if latest is not None:
        return redirect("conversation", pk=latest.pk)
    return redirect("conversation_new")


@login_required
def conversation_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = NewConversationForm(request.POST, viewer=request.user)
        if not form.is_valid():
            if request.htmx:
                return _composer_error(_form_errors(form))
            return render(request, "conversations/new.html", _page_context(request, form=form),
                          status=UNPROCESSABLE)
        data = form.cleaned_data
        files = request.FILES.getlist("files")
        try:
            if files:  # checked and converted before the transaction below takes its locks
                prepare_uploads(files=files, model=data["model"])
            # A refused first message must not leave an empty conversation behind.
            with transaction.atomic():
                conversation = services.create_conversation(
                    owner=request.user, model=data["model"], system_prompt=data["system_prompt"],
                    temperature=data["temperature"], top_p=data["top_p"],
                    max_tokens=data["max_tokens"],
                )
                services.post_message(
                    conversation=conversation, author=request.user, text=data["text"],
                    files=files, aspect_ratio=data["aspect_ratio"],
                    image_size=data["image_size"],
                )
        except ServiceError as exc:
            if request.htmx:
                return _refused(exc, request)
            form.add_error(None, exc.message)
            return render(request, "conversations/new.html", _page_context(request, form=form),
                          status=UNPROCESSABLE)
        url = reverse("conversation", kwargs={"pk": conversation.pk})
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    last = (Conversation.objects.for_user(request.user).filter(model__isnull=False)
            .exclude(model__in=ChatModel.objects.filter(SIMULATED_FAILURE)).first())
    if last is not None:
        initial = {"model": last.model, "temperature": last.temperature, "top_p": last.top_p,
                   "max_tokens": last.max_tokens}
    else:
        # A first chat starts on the model that takes the most kinds of file.
        initial = {"model": ChatModel.objects.offered_to(request.user).order_by(
            "-accepts_video", "-accepts_audio", "-accepts_pdf", "-accepts_image",
            "display_name", "model_id",
        ).first()}
    form = NewConversationForm(initial=initial, viewer=request.user)
    return render(request, "conversations/new.html", _page_context(request, form=form))


@login_required
@require_GET
@csp_update({"img-src": ["data:"]})  # pictures in the models' answers (rendering.py)
def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    # ?m=: opened at a message (a search result), on its branch, without saving a choice.
    window = branch_window(conversation=conversation, showing=_int_param(request, "m"))
    context = _page_context(
        request,
        conversation=conversation,
        messages=render_window(window),
        has_messages=bool(window.items),
        meter=context_meter(conversation=conversation),
        settings_form=ConversationSettingsForm(instance=conversation, viewer=request.user),
        message_form=MessageForm(),
    )
    return render(request, "conversations/detail.html", context)


@login_required
@require_GET
def conversation_context(request: HttpRequest, pk: int) -> HttpResponse:
    """The meter under the composer, refreshed after each reply."""
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    return render(request, "conversations/_context_meter.html", {
        "conversation": conversation, "meter": context_meter(conversation=conversation),
    })


@login_required
@require_GET
def conversation_earlier(request: HttpRequest, pk: int) -> HttpResponse:
    """The messages before ?before=, as the reader scrolls up to them."""
    conversation = get_conversation_for_user(user=request.user, pk=pk, with_model=False)
    window = branch_window(conversation=conversation, showing=_int_param(request, "m"),
                           before=_int_param(request, "before"))
    return HttpResponse(render_window(window))


def _int_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() else None


@login_required
@require_POST
def conversation_settings(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    form = ConversationSettingsForm(request.POST, instance=conversation, viewer=request.user)
    if not form.is_valid():
        return render(request, "conversations/_settings_body.html",
                      {"conversation": conversation, "settings_form": form},
                      status=UNPROCESSABLE)
    data = form.cleaned_data
    services.update_conversation_settings(
        conversation=conversation, model=data["model"], system_prompt=data["system_prompt"],
        temperature=data["temperature"], top_p=data["top_p"], max_tokens=data["max_tokens"],
    )
    if not request.htmx:  # the form sent without script
        return redirect("conversation", pk=conversation.pk)
    return render(request, "conversations/_settings_body.html",
                  {"conversation": conversation, "settings_form": form, "saved": True})


@login_required
@require_POST
def conversation_model(request: HttpRequest, pk: int) -> HttpResponse:
    """The header's model picker: the next replies come from the model picked."""
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    form = ModelPickForm(request.POST, viewer=request.user)
    if not form.is_valid():
        return _composer_error(_form_errors(form))
    services.switch_model(conversation=conversation, model=form.cleaned_data["model"])
    if not request.htmx:  # the form sent without script
        return redirect("conversation", pk=conversation.pk)
    return render(request, "conversations/_model_switched.html", {
        "conversation": conversation,
        "settings_form": ConversationSettingsForm(instance=conversation, viewer=request.user),
        "meter": context_meter(conversation=conversation),
    })


@login_required
@require_POST
def conversation_carry_over(request: HttpRequest, pk: int) -> HttpResponse:
    """Continue in a new chat: the old one grew past the model's window."""
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    try:
        fresh = services.continue_in_new_chat(conversation=conversation, author=request.user)
    except ServiceError as exc:
        return _refused(exc, request)
    url = reverse("conversation", kwargs={"pk": fresh.pk})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_POST
def message_create(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk, with_model=False)
    form = MessageForm(request.POST)
    if not form.is_valid():
        return _composer_error(_form_errors(form))
    try:
        data = form.cleaned_data
        user_message, reply = services.post_message(
            conversation=conversation, author=request.user, text=data["text"],
            files=request.FILES.getlist("files"), aspect_ratio=data["aspect_ratio"],
            image_size=data["image_size"], edit_picture=data["edit_picture"],
        )
    except ServiceError as exc:
        return _refused(exc, request)
    if not request.htmx:
        return redirect("conversation", pk=conversation.pk)
    shown = getattr(reply, "shown_html", None) or messages_upsert([user_message, reply])
    return HttpResponse(
        shown
        + upsert("composer-errors", mark_safe(_NO_COMPOSER_ERROR))  # noqa: S308 - a constant
        + _sidebar_entry(request, conversation)
        + _title_entry(conversation)
    )


def _title_entry(conversation: Conversation) -> str:
    """The page's heading, named by the first message."""
    html = render_to_string("conversations/_title.html", {"conversation": conversation})
    return upsert("conversation-head", mark_safe(html))  # noqa: S308 - an escaped template


def _sidebar_entry(request: HttpRequest, conversation: Conversation) -> str:
    """The conversation's sidebar entry, moved to the top. Without its cost: a post
    spends nothing, so the label the page shows moves with the entry (static/js/
    chat.js), and the page refreshes it when the reply ends (billing.views.
    conversation_cost). Costing it here was a sixth of a post's CPU."""
    html = render_to_string(
        "conversations/_sidebar_item.html",
        {"item": conversation, "current": conversation, "cost_unchanged": True},
        request=request,
    )
    return f'<div hx-swap-oob="afterbegin:#conversation-list" data-upsert>{html}</div>'


@login_required
@require_POST
def message_stop(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_message_for_user(user=request.user, pk=pk)
    services.request_stop(message=message)
    message.refresh_from_db()
    return HttpResponse(messages_upsert([message]))


@login_required
@require_POST
def message_retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Retry a failed reply, or regenerate a finished one: a new version in its place."""
    message = get_message_for_user(user=request.user, pk=pk)
    return _change_branch(request, message, services.regenerate_reply, message=message)


@login_required
@require_POST
def message_continue(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_message_for_user(user=request.user, pk=pk)
    return _change_branch(request, message, services.continue_reply, message=message)


@login_required
@require_POST
def message_edit(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_message_for_user(user=request.user, pk=pk)
    form = MessageForm(request.POST)
    if not form.is_valid():
        return _composer_error(_form_errors(form))
    return _change_branch(request, message, services.edit_message, message=message,
                          text=form.cleaned_data["text"])


@login_required
@require_POST
def message_show(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch to this version of a reply, or this branch of a question."""
    message = get_message_for_user(user=request.user, pk=pk)
    return _change_branch(request, message, services.show_version, message=message)


def _change_branch(request: HttpRequest, shown, service, **arguments) -> HttpResponse:
    """Run a service that changes what the conversation shows, then show it all
    again: messages of the branch left behind leave the page."""
    try:
        service(**arguments)
    except ServiceError as exc:
        return _refused(exc, request)
    if not request.htmx:
        return redirect("conversation", pk=shown.conversation_id)
    window = branch_window(conversation=shown.conversation)
    return HttpResponse(
        message_list(window) + upsert("composer-errors", mark_safe(_NO_COMPOSER_ERROR))  # noqa: S308
    )


@login_required
@require_POST
def conversation_delete(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    try:
        services.delete_conversation(conversation=conversation)
    except ServiceError as exc:
        return _refused(exc, request)
    url = reverse("home")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_POST
def conversation_rename(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    try:
        services.rename_conversation(conversation=conversation,
                                     title=request.POST.get("title", ""))
    except ServiceError as exc:
        return _refused(exc, request)
    return _back_to(request, conversation)


@login_required
@require_POST
def conversation_pin(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    services.set_pinned(conversation=conversation, pinned=request.POST.get("pinned") == "1")
    return _back_to(request, conversation)


@login_required
@require_POST
def conversation_archive(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    services.set_archived(conversation=conversation,
                          archived=request.POST.get("archived") == "1")
    return _back_to(request, conversation)


def _back_to(request: HttpRequest, conversation: Conversation) -> HttpResponse:
    """The page again: its heading and the sidebar both change."""
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect("conversation", pk=conversation.pk)


@login_required
@require_GET
def sidebar_more(request: HttpRequest) -> HttpResponse:
    """The next page of the sidebar, asked for as the reader scrolls to its end."""
    page = sidebar_conversations(user=request.user, after=request.GET.get("after", ""))
    current = request.GET.get("current", "")
    return render(request, "conversations/_sidebar_page.html", {
        "conversations": page, "current": {"pk": int(current)} if current.isdigit() else None,
    })
