"""Replies rendered before math, footnotes, task lists and code-block Copy
buttons (rendering.py) are rendered again on their next visit, and kept again."""

from django.db import migrations


def forget_rendered(apps, schema_editor):
    Message = apps.get_model("conversations", "Message")
    Message.objects.exclude(rendered=None).update(rendered=None)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0008_first_token")]
    operations = [migrations.RunPython(forget_rendered, migrations.RunPython.noop)]
