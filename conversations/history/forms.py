"""The search page's filters."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from conversations.models import ChatModel, Relay


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, strip=True, label=_("Search"))
    model = forms.ModelChoiceField(queryset=ChatModel.objects.none(), required=False,
                                   label=_("Model"), empty_label=_("Any model"))
    relay = forms.ModelChoiceField(queryset=Relay.objects.none(), required=False,
                                   label=_("Relay"), empty_label=_("Any relay"))
    since = forms.DateField(required=False, label=_("From"),
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label=_("To"),
                            widget=forms.DateInput(attrs={"type": "date"}))
    files = forms.BooleanField(required=False, label=_("Has files"))
    pictures = forms.BooleanField(required=False, label=_("Has generated pictures"))
    sort = forms.ChoiceField(required=False, label=_("Sort"), choices=[
        ("relevance", _("Best match")), ("recent", _("Most recent")),
        ("cost", _("Costliest"))])
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = ChatModel.objects.select_related("relay")
        self.fields["relay"].queryset = Relay.objects.all()
