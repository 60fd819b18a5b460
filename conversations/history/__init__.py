"""A conversation's past: versions and branches, and search.

    tree.py      the message tree: each message's parent, the child on screen
                 at each fork, the branch on screen, a message's versions
                 (‹ 2/3 ›), and the path that is a reply's history
    search.py    full-text search of one person's messages (SQLite FTS5,
                 PostgreSQL tsvector), ranked, filtered, with escaped snippets
    forms.py, views.py, urls.py   the search page

May import: models and the ground floor (errors, search_terms); views.py also
selectors, for the sidebar, as billing/views.py does. Never services,
generation or the chat core's views: they import this.
"""
