from __future__ import annotations

from django import forms

from conversations.capabilities import ASPECT_RATIOS, IMAGE_SIZES
from conversations.models import ChatModel, Conversation

MAX_MESSAGE_CHARS = 200_000


class ModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ChatModel) -> str:
        return str(obj)


class ConversationSettingsForm(forms.ModelForm):
    model = ModelChoiceField(
        queryset=ChatModel.objects.none(), empty_label=None, label="Model"
    )
    temperature = forms.FloatField(
        required=False, min_value=0, max_value=2, label="Temperature",
        widget=forms.NumberInput(attrs={"step": "0.1", "placeholder": "default"}),
    )
    top_p = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Top P",
        widget=forms.NumberInput(attrs={"step": "0.05", "placeholder": "default"}),
    )
    max_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=1_000_000, label="Max tokens",
        widget=forms.NumberInput(attrs={"placeholder": "default"}),
    )
    system_prompt = forms.CharField(
        required=False, label="System prompt",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Optional instructions"}),
    )

    class Meta:
        model = Conversation
        fields = ["model", "system_prompt", "temperature", "top_p", "max_tokens"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = ChatModel.objects.usable()


class MessageForm(forms.Form):
    text = forms.CharField(
        required=False, max_length=MAX_MESSAGE_CHARS, strip=True, label="Message",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Send a message…"}),
    )
    # Image-output models only; empty keeps the conversation's choice.
    aspect_ratio = forms.ChoiceField(
        required=False, label="Aspect ratio", choices=[("", "")] + [(r, r) for r in ASPECT_RATIOS]
    )
    image_size = forms.ChoiceField(
        required=False, label="Size", choices=[("", "")] + [(s, s) for s in IMAGE_SIZES]
    )
    edit_picture = forms.UUIDField(required=False, label="Picture to edit")


class NewConversationForm(ConversationSettingsForm, MessageForm):
    """The first message and the conversation's settings in one form."""

    class Meta(ConversationSettingsForm.Meta):
        pass

