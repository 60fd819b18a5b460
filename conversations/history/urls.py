from django.urls import path

from conversations.history import views

urlpatterns = [
    path("", views.search_page, name="search"),
]
