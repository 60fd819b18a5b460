from __future__ import annotations

from django import forms
from django.contrib.auth.forms import BaseUserCreationForm


class AddUserForm(BaseUserCreationForm):
    is_staff = forms.BooleanField(
        required=False, label="Staff", help_text="May add and deactivate people and use the admin.",
    )

    class Meta(BaseUserCreationForm.Meta):
        fields = ("username",)
