import django.db.models.deletion
from django.db import migrations, models


def link_linear_conversations(apps, schema_editor):
    """Each existing conversation becomes a tree showing exactly what it showed.

    A reply's parent is the question before it, so the extra cards the old
    Retry added under a question become versions of one reply; a question's
    parent is the latest reply before it (the one the old history ended on).
    No row is changed but its parent; every conversation keeps its newest
    versions on screen, which is a fork's default.
    """
    Message = apps.get_model("conversations", "Message")
    batch = []
    conversation_id = None
    last_user = last_reply = None
    rows = (Message.objects.order_by("conversation_id", "created_at", "pk")
            .values_list("pk", "conversation_id", "role").iterator(chunk_size=2000))
    for pk, conversation, role in rows:
        if conversation != conversation_id:
            conversation_id, last_user, last_reply = conversation, None, None
        if role == "user":
            parent, last_user = last_reply, pk
        else:
            parent, last_reply = (last_user if last_user is not None else last_reply), pk
        if parent is not None:
            batch.append(Message(pk=pk, parent_id=parent))
        if len(batch) >= 1000:
            Message.objects.bulk_update(batch, ["parent"])
            batch = []
    if batch:
        Message.objects.bulk_update(batch, ["parent"])


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0003_usage_day_rollup"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="current_children",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                related_name="children", to="conversations.message",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="search_text",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="conversation",
            name="title_source",
            field=models.CharField(
                blank=True, max_length=16,
                choices=[("", "not yet (or from before titles were generated)"),
                         ("first_words", "the first message's words"),
                         ("model", "named by TITLE_MODEL"), ("user", "renamed by its owner")],
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="pinned",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="conversation",
            name="archived_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="deleted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("archived_at__isnull", True), ("deleted_at__isnull", True)),
                fields=["owner", "-updated_at", "-id"], name="conv_owner_sidebar",
            ),
        ),
        # A deleted conversation's costs stay: its usage rows outlive its messages.
        migrations.AlterField(
            model_name="usage",
            name="message",
            field=models.OneToOneField(
                blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                related_name="usage", to="conversations.message",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="rendered",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(link_linear_conversations, migrations.RunPython.noop),
    ]
