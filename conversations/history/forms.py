"""The search page's filters."""

from __future__ import annotations

from django import forms

from conversations.models import ChatModel, Relay


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, strip=True, label="Search")
    model = forms.ModelChoiceField(queryset=ChatModel.objects.none(), required=False,
                                   label="Model", empty_label="Any model")
    relay = forms.ModelChoiceField(queryset=Relay.objects.none(), required=False,
                                   label="Relay", empty_label="Any relay")
    since = forms.DateField(required=False, label="From",
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To",
                            widget=forms.DateInput(attrs={"type": "date"}))
    files = forms.BooleanField(required=False, label="Has files")
    sort = forms.ChoiceField(required=False, label="Sort", choices=[
        ("relevance", "Best match"), ("recent", "Most recent"), ("cost", "Costliest")])
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = ChatModel.objects.select_related("relay")
        self.fields["relay"].queryset = Relay.objects.all()
