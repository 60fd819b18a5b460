from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The strings of static/js in the page's language (gettext() in the scripts).
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["conversations"]),
         name="javascript-catalog"),
    path("", include("conversations.urls")),
]

# Posts Django refuses before a view runs (too large, unreadable) are said in plain
# words, in the composer when HTMX sent them.
handler400 = "conversations.views.bad_request"
# The database away (restarting, failing over): a 503 in plain words (infra/outage.py).
handler500 = "conversations.infra.outage.server_error"
