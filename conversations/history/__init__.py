"""A conversation's past: versions and branches (the message tree).

Owns: the tree of a conversation's messages (each message's parent, the
child on screen at each fork), the branch on screen, a message's versions
(‹ 2/3 ›), and the path that is a reply's history.

May import: conversations.models and the ground floor (errors). Nothing
above: no services, views, fragments or generation; they import this.
"""
