"""Search: every message's search terms, and the database's own index on them.

SQLite: an FTS5 table over the column (external content, kept by triggers;
updates only when search_text changes, so streaming checkpoints cost nothing).
PostgreSQL: a stored tsvector column generated from it, with a GIN index.
Django's model knows neither: history/search.py queries them in SQL.
"""

from django.db import migrations

SQLITE = [
    "CREATE VIRTUAL TABLE conversations_message_fts USING fts5("
    "search_text, content='conversations_message', content_rowid='id', "
    "tokenize='unicode61')",
    "CREATE TRIGGER conversations_message_fts_insert AFTER INSERT ON conversations_message "
    "BEGIN INSERT INTO conversations_message_fts(rowid, search_text) "
    "VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER conversations_message_fts_delete AFTER DELETE ON conversations_message "
    "BEGIN INSERT INTO conversations_message_fts(conversations_message_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER conversations_message_fts_update AFTER UPDATE OF search_text "
    "ON conversations_message BEGIN "
    "INSERT INTO conversations_message_fts(conversations_message_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO conversations_message_fts(rowid, search_text) "
    "VALUES (new.id, new.search_text); END",
]
SQLITE_UNDO = [
    "DROP TRIGGER IF EXISTS conversations_message_fts_update",
    "DROP TRIGGER IF EXISTS conversations_message_fts_delete",
    "DROP TRIGGER IF EXISTS conversations_message_fts_insert",
    "DROP TABLE IF EXISTS conversations_message_fts",
]
POSTGRESQL = [
    "ALTER TABLE conversations_message ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, search_text)) STORED",
    "CREATE INDEX conversations_message_search ON conversations_message "
    "USING gin (search_vector)",
]
POSTGRESQL_UNDO = [
    "DROP INDEX IF EXISTS conversations_message_search",
    "ALTER TABLE conversations_message DROP COLUMN IF EXISTS search_vector",
]


def _run(schema_editor, statements):
    with schema_editor.connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def backfill_and_index(apps, schema_editor):
    from conversations.search_terms import index_text

    Message = apps.get_model("conversations", "Message")
    batch = []
    for pk, text in Message.objects.values_list("pk", "text").iterator(chunk_size=2000):
        if text:
            batch.append(Message(pk=pk, search_text=index_text(text)))
        if len(batch) >= 1000:
            Message.objects.bulk_update(batch, ["search_text"])
            batch = []
    if batch:
        Message.objects.bulk_update(batch, ["search_text"])
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        _run(schema_editor, SQLITE)
        _run(schema_editor, ["INSERT INTO conversations_message_fts(conversations_message_fts) "
                             "VALUES ('rebuild')"])
    elif vendor == "postgresql":
        _run(schema_editor, POSTGRESQL)


def drop_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    _run(schema_editor, SQLITE_UNDO if vendor == "sqlite" else
         POSTGRESQL_UNDO if vendor == "postgresql" else [])


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0004_history"),
    ]

    operations = [
        migrations.RunPython(backfill_and_index, drop_index),
    ]
