from django.urls import path

from conversations.relays import views

urlpatterns = [
    path("", views.relays_page, name="relays"),
]
