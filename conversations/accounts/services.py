"""Writes about people: adding them, and switching them off and on."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from conversations.errors import ServiceError
from conversations.events import AccountClosed, publish, user_group


def add_user(*, username: str, password: str, is_staff: bool = False) -> AbstractUser:
    return get_user_model().objects.create_user(
        username=username, password=password, is_staff=is_staff
    )


def set_active(*, user: AbstractUser, active: bool, by: AbstractUser) -> None:
    """Switch `user` on or off. Off ends every session they have at once."""
    if user.pk == by.pk:
        raise ServiceError(gettext("You cannot deactivate yourself; ask another staff member."))
    if user.is_superuser and not by.is_superuser:
        raise ServiceError(gettext("Only a superuser can change another superuser."))
    if user.is_active == active:
        return
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active"])
        if not active:
            end_sessions(user=user)
            transaction.on_commit(lambda: _close_sockets(user.pk))


def end_sessions(*, user: AbstractUser) -> int:
    """Delete the stored sessions that sign `user` in; returns how many."""
    # Sessions are not indexed by user; a team's live sessions are few.
    ended = [
        session.pk for session in Session.objects.filter(expire_date__gt=timezone.now())
        if session.get_decoded().get("_auth_user_id") == str(user.pk)
    ]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


def _close_sockets(user_id: int) -> None:
    """Every socket the user has open, on any process, closes now."""
    closed: AccountClosed = {"type": "account.closed"}
    async_to_sync(publish)(user_group(user_id), closed)
