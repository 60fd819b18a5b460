"""Each user's own password; the staff's people page."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from conversations.accounts import language, services
from conversations.accounts.forms import AddUserForm
from conversations.errors import ServiceError


class PasswordChange(auth_views.PasswordChangeView):
    """Django's own: it keeps this session signed in and ends the others."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("password_change_done")


class PasswordChangeDone(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


def staff_required(view):
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


@staff_required
def people(request: HttpRequest) -> HttpResponse:
    form = AddUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.add_user(username=form.cleaned_data["username"],
                                 password=form.cleaned_data["password1"],
                                 is_staff=form.cleaned_data["is_staff"])
        messages.success(request, gettext("Added %(name)s. Give them their password.")
                         % {"name": user.get_username()})
        return redirect("people")
    users = get_user_model().objects.order_by("-is_active", "username")
    return render(request, "accounts/people.html", {"form": form, "users": users},
                  status=422 if form.errors else 200)


@staff_required
@require_POST
def person_active(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=pk)
    active = request.POST.get("active") == "1"
    try:
        services.set_active(user=user, active=active, by=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        done = (gettext("%(name)s is active again.") if active
                else gettext("%(name)s is deactivated and signed out."))
        messages.success(request, done % {"name": user.get_username()})
    return redirect("people")


@require_POST
def choose_language(request: HttpRequest) -> HttpResponse:
    """The language menu (signed in or not, like Django's set_language): kept in
    the session and a cookie, and with the person when signed in."""
    code = language.supported(request.POST.get("language")) or ""
    if request.user.is_authenticated:
        language.choose(request.user, code)
    request.session[language.SESSION_KEY] = code
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("home")
    response = redirect(back)
    if code:
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, code, samesite="Lax",
                            secure=settings.SESSION_COOKIE_SECURE, httponly=True,
                            max_age=365 * 24 * 3600)
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    return response
