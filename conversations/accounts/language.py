"""Which language a person reads: chosen from the menu (kept per user), else
what their browser asks for.

Pages get it from `UserLanguage` (after Django's `LocaleMiddleware`), sockets
from `for_scope`, and work done without a request (a reply's errors and its
finished HTML, written by a generation) from `for_user`: the language the
person chose, else the one their browser last asked for.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db.models import F
from django.dispatch import receiver
from django.utils import translation

from conversations.models import Preferences

SESSION_KEY = "language"  # the chosen language, copied into the session at sign-in


def supported(code: str | None) -> str | None:
    """`code` as one of settings.LANGUAGES (zh-CN → zh-hans), or None."""
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(code.lower())
    except LookupError:
        return None


def for_user(user_id: int) -> str:
    row = Preferences.objects.filter(user_id=user_id).values_list(
        "language", "browser_language").first()
    return of(*row) if row else settings.LANGUAGE_CODE


def of(chosen: str | None, browser: str | None) -> str:
    """The language of a person's Preferences columns (read joined elsewhere,
    e.g. with `OWNER_LANGUAGE` annotations): the chosen one, else the browser's."""
    return supported(chosen) or supported(browser) or settings.LANGUAGE_CODE


def owner_columns(path: str) -> dict[str, F]:
    """Annotations reading the Preferences of the user at `path` (e.g.
    "conversation__owner") in the same query: pass them to `of`."""
    return {"owner_language": F(f"{path}__preferences__language"),
            "owner_browser_language": F(f"{path}__preferences__browser_language")}


def of_row(obj) -> str:
    """The language of an object annotated with `owner_columns`."""
    return of(getattr(obj, "owner_language", None), getattr(obj, "owner_browser_language", None))


def choose(user, code: str) -> None:
    """Remember `code` as `user`'s language ("" follows the browser again)."""
    Preferences.objects.update_or_create(user=user, defaults={"language": code})


def for_scope(scope: dict) -> str:
    """A socket's language: the session's choice, else its Accept-Language."""
    session = scope.get("session")
    chosen = supported(session.get(SESSION_KEY)) if session is not None else None
    if chosen:
        return chosen
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            for code, _ in translation.trans_real.parse_accept_lang_header(value.decode()):
                if found := supported(code):
                    return found
    return settings.LANGUAGE_CODE


class UserLanguage:
    """After LocaleMiddleware and AuthenticationMiddleware: a signed-in person's
    choice wins over the browser's; the browser's is noted (once per change) for
    the work done later without a request."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        chosen = supported(session.get(SESSION_KEY)) if session is not None else None
        if chosen:
            translation.activate(chosen)
            request.LANGUAGE_CODE = chosen
        elif request.user.is_authenticated and session is not None:
            self._note_browser_language(request, session)
        return self.get_response(request)

    @staticmethod
    def _note_browser_language(request, session) -> None:
        asked = request.LANGUAGE_CODE
        if session.get("browser_language") == asked:
            return
        Preferences.objects.update_or_create(
            user=request.user, defaults={"browser_language": asked})
        session["browser_language"] = asked


@receiver(user_logged_in, dispatch_uid="language-at-sign-in")
def copy_choice_into_session(sender, request, user, **kwargs) -> None:
    """user_logged_in: the language chosen on another device applies here too."""
    chosen = Preferences.objects.filter(user=user).values_list("language", flat=True).first()
    if chosen:
        request.session[SESSION_KEY] = chosen
