"""The chat header's model picker, rendered the same by the page and by the
responses that change the model (settings, the picker itself)."""

from __future__ import annotations

from django import template

from conversations.forms import ModelPickForm, model_choice_label

register = template.Library()


@register.inclusion_tag("conversations/_model_label.html", takes_context=True)
def model_picker(context, conversation, *, oob: bool = False):
    request = context.get("request")
    form = ModelPickForm(initial={"model": conversation.model_id},
                         viewer=getattr(request, "user", None))
    return {"conversation": conversation, "form": form, "oob": oob}


@register.filter
def model_choice(model) -> str:
    return model_choice_label(model)
