from django.urls import include, path

from conversations import views
from conversations.history import views as history_views
from conversations.media.gallery import gallery

urlpatterns = [
    path("", views.home, name="home"),
    path("c/new/", views.conversation_new, name="conversation_new"),
    path("c/<int:pk>/", views.conversation_detail, name="conversation"),
    path("c/<int:pk>/context/", views.conversation_context, name="conversation_context"),
    path("c/<int:pk>/earlier/", views.conversation_earlier, name="conversation_earlier"),
    path("c/<int:pk>/settings/", views.conversation_settings, name="conversation_settings"),
    path("c/<int:pk>/model/", views.conversation_model, name="conversation_model"),
    path("c/<int:pk>/carry-over/", views.conversation_carry_over,
         name="conversation_carry_over"),
    path("c/<int:pk>/messages/", views.message_create, name="message_create"),
    path("c/<int:pk>/delete/", views.conversation_delete, name="conversation_delete"),
    path("c/<int:pk>/rename/", views.conversation_rename, name="conversation_rename"),
    path("c/<int:pk>/pin/", views.conversation_pin, name="conversation_pin"),
    path("c/<int:pk>/archive/", views.conversation_archive, name="conversation_archive"),
    path("sidebar/more/", views.sidebar_more, name="sidebar_more"),
    path("c/<int:pk>/export.md", history_views.conversation_markdown,
         name="conversation_markdown"),
    path("c/<int:pk>/export.zip", history_views.conversation_zip, name="conversation_zip"),
    path("export/", history_views.export_page, name="export"),
    path("export/all.zip", history_views.all_zip, name="export_all"),
    path("m/<int:pk>/stop/", views.message_stop, name="message_stop"),
    path("m/<int:pk>/retry/", views.message_retry, name="message_retry"),
    path("m/<int:pk>/continue/", views.message_continue, name="message_continue"),
    path("m/<int:pk>/edit/", views.message_edit, name="message_edit"),
    path("m/<int:pk>/show/", views.message_show, name="message_show"),
    path("costs/", include("conversations.billing.urls")),
    path("files/", include("conversations.media.urls")),
    path("search/", include("conversations.history.urls")),
    path("pictures/", gallery, name="gallery"),
    path("relays/", include("conversations.relays.urls")),
    path("", include("conversations.accounts.urls")),
]
