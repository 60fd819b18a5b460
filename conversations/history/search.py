"""Search through everything said in one person's conversations.

The database finds and ranks (SQLite FTS5 with bm25, PostgreSQL's tsvector
with ts_rank), always joined to the conversation's owner; the terms are
those of search_terms.py, so Chinese two-character words are found.

Ranking is done among the newest RANKED_MATCHES matches (100 pages), and the
page says when a search matched more. Ranking means reading every match's
stored vector from the table: a common English phrase matched 131,000 of one
person's 1,000,000 messages in bench/history.py, and ranking them all took
560–700 ms on PostgreSQL (the GIN lookup itself is 50 ms; the heap reads are
the rest). The newest 2,001 matches are read by walking the primary key
backwards, or through the index when the words are rare, as the planner
chooses, and ranked in 85–165 ms. Known limit: the planner estimates a
phrase's matches as the product of its words', so a very common phrase of
Chinese bigrams (上下文窗口 in 17% of the bench's messages) is guessed rare,
read whole and takes 0.6–1.4 s there.

Snippets are cut from the stored text here and escaped piece by piece
before the matched words are wrapped in <mark>.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import connection
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from conversations.models import Conversation, Message
from conversations.search_terms import highlight_words, query_groups

PAGE_SIZE = 20
RANKED_MATCHES = 2_000  # 100 pages
SNIPPET_CHARS = 160
SORTS = ("relevance", "recent", "cost")


@dataclass(frozen=True)
class SearchFilters:
    model_id: int | None = None
    relay_id: int | None = None
    since: date | None = None
    until: date | None = None  # inclusive
    has_files: bool = False
    has_pictures: bool = False  # pictures a model made
    sort: str = "relevance"


@dataclass
class Hit:
    message: Message
    snippet: SafeString


@dataclass
class SearchPage:
    query: str
    hits: list[Hit] = field(default_factory=list)
    titles: list[Conversation] = field(default_factory=list)
    page: int = 1
    has_next: bool = False
    capped: bool = False  # ranked among the newest RANKED_MATCHES matches only

    @property
    def ranked_limit(self) -> int:
        return RANKED_MATCHES


def search(*, user, query: str, filters: SearchFilters | None = None,
           page: int = 1) -> SearchPage:
    filters = filters or SearchFilters()
    result = SearchPage(query=query, page=page)
    groups = query_groups(query)
    if not groups:
        return result
    ids, result.capped = _matching_ids(user_id=user.pk, groups=groups, filters=filters,
                                       limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    result.has_next = len(ids) > PAGE_SIZE
    ids = ids[:PAGE_SIZE]
    by_id = Message.objects.for_user(user).select_related("conversation").in_bulk(ids)
    words = highlight_words(query)
    result.hits = [Hit(by_id[pk], snippet(by_id[pk].text, words)) for pk in ids if pk in by_id]
    if page == 1:
        result.titles = _title_matches(user=user, query=query)
    return result


def _title_matches(*, user, query: str, limit: int = 5) -> list[Conversation]:
    """Titles are few per person (one each): a scan of one person's titles is
    milliseconds even at 10,000 conversations, and finds any substring."""
    return list(Conversation.objects.for_user(user).filter(title__icontains=query.strip())
                .order_by("-updated_at")[:limit])


def _matching_ids(*, user_id: int, groups, filters: SearchFilters, limit: int,
                  offset: int) -> tuple[list[int], bool]:
    """One page of matching message ids, and whether ranking was cut to the newest
    RANKED_MATCHES matches."""
    where = ["c.owner_id = %s"]
    params: list = [user_id]
    if filters.model_id:
        where.append("c.model_id = %s")
        params.append(filters.model_id)
    if filters.relay_id:
        where.append("c.model_id IN (SELECT id FROM conversations_chatmodel WHERE relay_id = %s)")
        params.append(filters.relay_id)
    if filters.since:
        where.append("m.created_at >= %s")
        params.append(filters.since)
    if filters.until:
        where.append("m.created_at < %s")
        params.append(filters.until + timedelta(days=1))
    if filters.has_files:
        where.append("EXISTS (SELECT 1 FROM conversations_attachment a JOIN conversations_message"
                     " f ON f.id = a.message_id WHERE f.conversation_id = c.id)")
    if filters.has_pictures:
        where.append("EXISTS (SELECT 1 FROM conversations_attachment a JOIN conversations_message"
                     " f ON f.id = a.message_id WHERE f.conversation_id = c.id AND a.generated)")
    if connection.vendor == "postgresql":
        match, score, source = _postgresql(groups)
        newest, better = "m.id DESC", "score DESC"
    else:
        match, score, source = _sqlite(groups)
        # FTS5 walks its own rowids backwards without sorting; bm25: lower is better.
        newest, better = "conversations_message_fts.rowid DESC", "score"
    order = {"recent": "id DESC", "cost": f"total_cost DESC, {better}, id DESC"}.get(
        filters.sort, f"{better}, id DESC")
    # Identifiers and fragments are constants of this module; every value is a parameter.
    # Message ids grow with time: the newest matches are the highest ids. One more
    # than is ranked is read to tell whether there were more; it is not ranked.
    sql = (
        "SELECT id, found FROM (SELECT id, score, total_cost, "  # noqa: S608
        "row_number() OVER (ORDER BY id DESC) AS n, count(*) OVER () AS found FROM ("
        f"SELECT m.id, {score} AS score, c.total_cost FROM {source} "
        "JOIN conversations_conversation c ON c.id = m.conversation_id "
        f"WHERE {match} AND {' AND '.join(where)} ORDER BY {newest} LIMIT %s"
        f") newest) ranked WHERE n <= %s ORDER BY {order} LIMIT %s OFFSET %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [_query_string(groups), *params, RANKED_MATCHES + 1,
                             RANKED_MATCHES, limit, offset])
        rows = cursor.fetchall()
    return [row[0] for row in rows], bool(rows) and rows[0][1] > RANKED_MATCHES


def _query_string(groups) -> str:
    if connection.vendor == "postgresql":
        # to_tsquery: 'a' <-> 'b' is a phrase, :* a prefix, & both.
        parts = []
        for tokens, prefix in groups:
            quoted = [_pg_quote(t) for t in tokens]
            phrase = " <-> ".join(quoted) + (":*" if prefix else "")
            parts.append(f"({phrase})" if len(quoted) > 1 else phrase)
        return " & ".join(parts)
    parts = []
    for tokens, prefix in groups:
        phrase = '"' + " ".join(t.replace('"', '""') for t in tokens) + '"'
        parts.append(phrase + ("*" if prefix else ""))
    return " AND ".join(parts)


def _pg_quote(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def _sqlite(groups):
    return ("conversations_message_fts MATCH %s", "bm25(conversations_message_fts)",
            "conversations_message_fts JOIN conversations_message m "
            "ON m.id = conversations_message_fts.rowid")


def _postgresql(groups):
    return ("m.search_vector @@ q", "ts_rank(m.search_vector, q)",
            "to_tsquery('simple', %s) q, conversations_message m")


def snippet(text: str, words: list[str], width: int = SNIPPET_CHARS) -> SafeString:
    """A window of `text` around the first match, escaped, with the words marked."""
    if not words:
        return mark_safe(escape(text[:width]))  # noqa: S308 - escaped
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    first = pattern.search(text)
    start = max(0, (first.start() if first else 0) - width // 3)
    window = text[start:start + width]
    out, last = [], 0
    for match in pattern.finditer(window):
        out.append(escape(window[last:match.start()]))
        out.append(f"<mark>{escape(match.group())}</mark>")
        last = match.end()
    out.append(escape(window[last:]))
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(text) else ""
    return mark_safe(prefix + "".join(out) + suffix)  # noqa: S308 - each piece escaped
