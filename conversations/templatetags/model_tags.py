"""The chat header's model picker, rendered the same by the page and by the
responses that change the model (settings, the picker itself)."""

from __future__ import annotations

import json

from django import template

from conversations.capabilities import refusals_for
from conversations.forms import ModelPickForm, model_capabilities, model_choice_label

register = template.Library()


@register.inclusion_tag("conversations/_model_label.html", takes_context=True)
def model_picker(context, conversation, *, oob: bool = False):
    request = context.get("request")
    form = ModelPickForm(initial={"model": conversation.model_id},
                         viewer=getattr(request, "user", None))
    return {"conversation": conversation, "form": form, "oob": oob, "request": request}


@register.filter
def model_choice(model) -> str:
    return model_choice_label(model)


@register.filter
def refusals(model, viewer) -> str:
    """The kinds of file `model` cannot be sent, as JSON for the page's script."""
    return json.dumps(refusals_for(model=model, viewer=viewer), ensure_ascii=False)


@register.filter
def capabilities(model) -> str:
    """What `model` takes and makes, kind by kind in the menu's words, as JSON
    for the header picker's marks (static/js/model_picker.js)."""
    return json.dumps(dict(model_capabilities(model)), ensure_ascii=False)
