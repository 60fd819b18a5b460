from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext

from conversations.capabilities import ASPECT_RATIOS, IMAGE_SIZES
from conversations.models import ChatModel, Conversation

MAX_MESSAGE_CHARS = 200_000


def model_capabilities(model: ChatModel) -> list[tuple[str, str]]:
    """What a model takes and makes, as (kind, word) pairs: the words every
    model menu shows (the header picker's marks too)."""
    return [(kind, str(word)) for kind, flag, word in (
        ("image", model.accepts_image, _("pictures")),
        ("audio", model.accepts_audio, _("audio")),
        ("video", model.accepts_video, _("video")),
        ("pdf", model.accepts_pdf, "PDF"),
        ("makes_images", model.outputs_images, _("makes pictures")),
    ) if flag]


def model_choice_label(model: ChatModel) -> str:
    """A model with what it takes and makes, so a person picks knowingly."""
    kinds = [word for _kind, word in model_capabilities(model)]
    if not kinds:
        return str(model)
    return pgettext("a model and what it takes", "%(model)s · %(kinds)s") % {
        "model": model, "kinds": ", ".join(kinds)}


class ModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ChatModel) -> str:
        return model_choice_label(obj)


class ModelPickForm(forms.Form):
    """The chat header's model picker: switches the chat's model, nothing else."""

    model = ModelChoiceField(queryset=ChatModel.objects.none(), empty_label=None,
                             label=_("Model"))

    def __init__(self, *args, viewer=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = ChatModel.objects.offered_to(viewer)


class ConversationSettingsForm(forms.ModelForm):
    model = ModelChoiceField(
        queryset=ChatModel.objects.none(), empty_label=None, label=_("Model")
    )
    temperature = forms.FloatField(
        required=False, min_value=0, max_value=2, label=_("Temperature"),
        widget=forms.NumberInput(attrs={"step": "0.1", "placeholder": _("default")}),
    )
    top_p = forms.FloatField(
        required=False, min_value=0, max_value=1, label=_("Top P"),
        widget=forms.NumberInput(attrs={"step": "0.05", "placeholder": _("default")}),
    )
    max_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=1_000_000, label=_("Max tokens"),
        widget=forms.NumberInput(attrs={"placeholder": _("default")}),
    )
    system_prompt = forms.CharField(
        required=False, label=_("System prompt"),
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("Optional instructions")}),
    )

    class Meta:
        model = Conversation
        fields = ["model", "system_prompt", "temperature", "top_p", "max_tokens"]

    def __init__(self, *args, viewer=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = ChatModel.objects.offered_to(viewer)


class MessageForm(forms.Form):
    text = forms.CharField(
        required=False, max_length=MAX_MESSAGE_CHARS, strip=True, label=_("Message"),
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": _("Send a message…")}),
    )
    # Image-output models only; empty keeps the conversation's choice.
    aspect_ratio = forms.ChoiceField(
        required=False, label=_("Aspect ratio"),
        choices=[("", "")] + [(r, r) for r in ASPECT_RATIOS],
    )
    image_size = forms.ChoiceField(
        required=False, label=_("Size"), choices=[("", "")] + [(s, s) for s in IMAGE_SIZES]
    )
    edit_picture = forms.UUIDField(required=False, label=_("Picture to edit"))


class NewConversationForm(ConversationSettingsForm, MessageForm):
    """The first message and the conversation's settings in one form."""

    class Meta(ConversationSettingsForm.Meta):
        pass

