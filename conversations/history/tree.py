"""The message tree: which messages are on screen, and which are a reply's past.

A conversation is a tree: a message's parent is what it answers (a reply's
question) or follows (a question's previous reply, a continuation's cut
reply). Regenerating a reply adds a sibling (a version); editing a question
adds a sibling of it (a branch). The conversation remembers the child on
screen at each fork in `Conversation.current_children`; a fork it has no
entry for shows its newest child, so a conversation that never forked needs
no entry at all.

The tree is read as (id, parent id) pairs in one indexed query: a few
hundred small tuples, cheaper than walking parents one query at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from conversations.models import Conversation, Message

ROOT = "root"


def _key(parent_id: int | None) -> str:
    return ROOT if parent_id is None else str(parent_id)


@dataclass(frozen=True)
class Versions:
    """Where a message stands among its siblings: `index` of `count` (1-based).
    `continues`: a reply that is the rest of the cut reply before it."""

    index: int
    count: int
    previous_id: int | None
    next_id: int | None
    continues: bool = False


class Tree:
    def __init__(self, rows: list[tuple[int, int | None, str]], current: dict[str, int]) -> None:
        # `rows` (id, parent id, role) in creation order: children come out oldest first.
        self.parents: dict[int, int | None] = {}
        self.roles: dict[int, str] = {}
        self.children: dict[int | None, list[int]] = {}
        for pk, parent_id, role in rows:
            self.parents[pk] = parent_id
            self.roles[pk] = role
            self.children.setdefault(parent_id, []).append(pk)
        self.current = current

    @classmethod
    def of(cls, conversation: Conversation) -> Tree:
        rows = list(
            Message.objects.filter(conversation_id=conversation.pk)
            .order_by("created_at", "pk").values_list("pk", "parent_id", "role")
        )
        return cls(rows, conversation.current_children or {})

    def current_child(self, parent_id: int | None) -> int | None:
        children = self.children.get(parent_id)
        if not children:
            return None
        chosen = self.current.get(_key(parent_id))
        return chosen if chosen in children else children[-1]

    def branch(self) -> list[int]:
        """The messages on screen, first to last."""
        path: list[int] = []
        node = self.current_child(None)
        while node is not None:
            path.append(node)
            node = self.current_child(node)
        return path

    def path_to(self, pk: int) -> list[int]:
        """`pk` and its ancestors, first message first."""
        path: list[int] = []
        node: int | None = pk
        while node is not None:
            path.append(node)
            node = self.parents.get(node)
        return path[::-1]

    def versions(self, pk: int) -> Versions:
        parent_id = self.parents.get(pk)
        siblings = self.children.get(parent_id, [pk])
        index = siblings.index(pk) if pk in siblings else 0
        assistant = Message.Role.ASSISTANT
        return Versions(
            index=index + 1, count=len(siblings),
            previous_id=siblings[index - 1] if index > 0 else None,
            next_id=siblings[index + 1] if index + 1 < len(siblings) else None,
            continues=self.roles.get(pk) == assistant and self.roles.get(parent_id) == assistant,
        )

    def choices_showing(self, pk: int) -> dict[str, int]:
        """`current_children` updated so that `pk` is on screen."""
        current = dict(self.current)
        for node in self.path_to(pk):
            current[_key(self.parents.get(node))] = node
        return current


@dataclass
class BranchWindow:
    """The latest messages of a branch (or those before `before`), with versions.
    `earlier_than`: the first one's id when older ones exist; `showing`: the
    message the window was opened at, if any (kept for the earlier pages)."""

    conversation_id: int
    items: list[tuple[Message, Versions]]
    earlier_than: int | None = None
    showing: int | None = None


def branch_ids(conversation: Conversation) -> list[int]:
    return Tree.of(conversation).branch()


def history_ids(reply: Message) -> list[int]:
    """What came before `reply` on its branch: the path to its parent."""
    if reply.parent_id is None:
        return []
    return Tree.of(reply.conversation).path_to(reply.parent_id)


def leaf_id(conversation: Conversation) -> int | None:
    """The last message on screen: a new question follows it."""
    branch = branch_ids(conversation)
    return branch[-1] if branch else None


ONLY_VERSION = Versions(index=1, count=1, previous_id=None, next_id=None)
_KNOWN_VERSIONS = "_known_versions"


def mark_only_version(message: Message) -> None:
    """`message` was just created under a message with no other child (a new
    question under the leaf, its pending reply): versions_of needs no query."""
    message.__dict__[_KNOWN_VERSIONS] = ONLY_VERSION


def versions_of(message: Message) -> Versions:
    """One message's versions, from its parent and siblings alone (one indexed query)."""
    known = message.__dict__.get(_KNOWN_VERSIONS)
    if known is not None:
        return known
    near = Q(parent_id=message.parent_id) if message.parent_id else Q(parent__isnull=True)
    if message.parent_id:
        near |= Q(pk=message.parent_id)
    rows = list(
        Message.objects.filter(near, conversation_id=message.conversation_id)
        .order_by("created_at", "pk").values_list("pk", "parent_id", "role")
    )
    if message.pk not in {pk for pk, _, _ in rows}:
        rows.append((message.pk, message.parent_id, message.role))
    return Tree(rows, {}).versions(message.pk)
