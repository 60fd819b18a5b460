"""Merge of the history, pictures and relays migrations.

On SQLite, a migration that rebuilds the message table (any of the 0004s may
run after 0005_history_search on a fresh database) drops the triggers that
keep the search index in step; they are made again here if missing, and the
index rebuilt from the column. PostgreSQL keeps its generated column and index.
"""

import importlib

from django.db import migrations

search = importlib.import_module("conversations.migrations.0005_history_search")


def keep_search_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        for sql in search.SQLITE[1:]:  # the triggers; the FTS table survives a rebuild
            cursor.execute(sql.replace("CREATE TRIGGER ", "CREATE TRIGGER IF NOT EXISTS ", 1))
        cursor.execute("INSERT INTO conversations_message_fts(conversations_message_fts) "
                       "VALUES ('rebuild')")


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0005_history_search"),
        ("conversations", "0005_merge_0004_pictures_0004_relays"),
    ]

    operations = [
        migrations.RunPython(keep_search_triggers, migrations.RunPython.noop),
    ]
