from __future__ import annotations

from django import forms
from django.contrib.auth.forms import BaseUserCreationForm
from django.utils.translation import gettext_lazy as _


class AddUserForm(BaseUserCreationForm):
    is_staff = forms.BooleanField(
        required=False, label=_("Staff"),
        help_text=_("May add and deactivate people and use the admin."),
    )

    class Meta(BaseUserCreationForm.Meta):
        fields = ("username",)
