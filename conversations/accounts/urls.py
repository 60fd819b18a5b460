from django.urls import path

from conversations.accounts import views

urlpatterns = [
    path("account/password/", views.PasswordChange.as_view(), name="password_change"),
    path("account/password/done/", views.PasswordChangeDone.as_view(),
         name="password_change_done"),
    path("language/", views.choose_language, name="choose_language"),
    path("people/", views.people, name="people"),
    path("people/<int:pk>/active/", views.person_active, name="person_active"),
]
