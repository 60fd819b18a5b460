"""/files/: an owner's files, and signed links for relays."""

from __future__ import annotations

from django.urls import path

from conversations.media import views

urlpatterns = [
    path("a/<uuid:uuid>/", views.attachment_file, name="attachment"),
    path("s/<str:token>/<str:name>", views.signed_attachment, name="attachment_signed"),
]
