"""Model output → safe HTML, one markdown block at a time.

A reply is cut into blocks at blank lines outside code fences. A finished
block never changes, so while a reply streams only the last, still-open
block is re-rendered and re-sent; each block is swapped into the page by its
own id. The page render of a stored reply uses the same splitter, so what a
reloaded page shows is exactly what the stream built.

Model output is untrusted: markdown is rendered with raw HTML disabled and
then sanitised, remote images become plain links (they would leak the
conversation to whoever hosts them), and only data: images are shown. A
picture the model made is a stored file shown below the text; the text keeps
a `picture:N` reference to it (relays/pictures.py), shown as a small label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import nh3
from django.utils.translation import gettext
from markdown_it import MarkdownIt
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from conversations.events import Block
from conversations.relays.pictures import REFERENCE_RE

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_FORMATTER = HtmlFormatter(nowrap=True)

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "td": {"class"},
    "th": {"class"},
    "span": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "div": {"class"},
}
_ALIGN = re.compile(r"^text-align:\s*(left|right|center)$")
_ALIGN_CLASS = re.compile(r"^align-(left|right|center)$")
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,", re.I)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        return value if _DATA_IMAGE.match(value) else None
    if attribute == "href":
        return value if value.lower().startswith(("http://", "https://", "mailto:", "#")) else None
    if tag in {"td", "th"} and attribute == "class":
        return value if _ALIGN_CLASS.match(value) else None
    return value


# Built once: nh3.clean() rebuilds its whole configuration on every call,
# which costs four times the cleaning itself (it runs for every frame).
_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes={"http", "https", "mailto", "data"},
    attribute_filter=_attribute_filter,
    link_rel="noopener noreferrer nofollow",
)


def sanitize(html: str) -> str:
    return _CLEANER.clean(html)


def _highlight(code: str, lang: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang or "text", stripall=False)
    except ClassNotFound:
        return ""  # markdown-it escapes it as plain code
    language = lexer.aliases[0] if lexer.aliases else ""
    return (
        f'<pre class="highlight"><code class="language-{language}">'
        f"{pygments_highlight(code, lexer, _FORMATTER)}</code></pre>"
    )


def _render_image(_renderer, tokens, idx, options, env) -> str:
    # markdown-it binds render rules as methods of the renderer.
    token = tokens[idx]
    src = str(token.attrs.get("src", ""))
    alt = _renderer.renderInlineAsText(token.children or [], options, env) or gettext("image")
    reference = REFERENCE_RE.match(src)
    if reference:
        label = gettext("[picture %(number)s]") % {"number": reference[1]}
        return f'<span class="picture-ref">{_escape(label)}</span>'
    if _DATA_IMAGE.match(src):
        return f'<img src="{src}" alt="{_escape(alt)}">'
    # A remote image would be fetched by the browser: show a link instead.
    label = gettext("[image: %(description)s]") % {"description": alt}
    return f'<a href="{_escape(src)}">{_escape(label)}</a>'


def _render_cell(renderer, tokens, idx, options, env) -> str:
    # A column's alignment as a class: the Content-Security-Policy allows no style attributes.
    token = tokens[idx]
    align = _ALIGN.match(token.attrGet("style") or "")
    if align:
        token.attrs.pop("style")
        token.attrSet("class", f"align-{align.group(1)}")
    return renderer.renderToken(tokens, idx, options, env)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight, "breaks": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _render_image)
    md.add_render_rule("th_open", _render_cell)
    md.add_render_rule("td_open", _render_cell)
    return md


def render_block(source: str) -> str:
    """One markdown block → sanitised HTML."""
    return sanitize(_markdown().render(source))


@dataclass
class BlockStream:
    """Cuts streamed text into markdown blocks as it arrives.

    `closed` holds the sources of finished blocks; `tail` is the block still
    being written. Feeding is linear in the text: only the tail is re-scanned.
    A blank line ends a block at once, except inside a fence and inside a
    list: a loose list's next item or indented content (a nested list, a
    second paragraph) belongs to the same list, so there the cut waits for
    the next non-blank line to tell.
    """

    closed: list[str] = field(default_factory=list)
    tail: str = ""
    _fence: str = ""
    _scanned: int = 0  # how much of `tail` is whole lines already classified
    _in_list: bool = False  # the open block contains a list item
    _blank_at: int = -1  # in a list: where the blank lines that may end it began

    def feed(self, text: str) -> list[str]:
        """Add text; return the blocks this closed (in order)."""
        self.tail += text
        newly_closed: list[str] = []
        while True:
            newline = self.tail.find("\n", self._scanned)
            if newline == -1:
                break
            start = self._scanned
            line = self.tail[start:newline]
            self._scanned = newline + 1
            if self._fence:
                fence = _FENCE.match(line)
                if fence and fence.group(1)[0] == self._fence[0] and len(
                    fence.group(1)
                ) >= len(self._fence) and not line.strip().strip(self._fence[0]):
                    self._fence = ""
                continue
            if line.strip() == "":
                if not self._in_list:
                    self._close(end=start, rest=self._scanned, into=newly_closed)
                elif self._blank_at < 0:
                    self._blank_at = start
                continue
            if self._blank_at >= 0:
                if line[0] in " \t" or _LIST_ITEM.match(line):
                    self._blank_at = -1  # the list goes on
                else:
                    self._close(end=self._blank_at, rest=start, into=newly_closed)
            fence = _FENCE.match(line)
            if fence:
                self._fence = fence.group(1)
            elif _LIST_ITEM.match(line):
                self._in_list = True
        return newly_closed

    def _close(self, *, end: int, rest: int, into: list[str]) -> None:
        block = self.tail[:end].strip("\n")
        self.tail = self.tail[rest:]
        self._scanned -= rest
        self._in_list = False
        self._blank_at = -1
        if block.strip():
            self.closed.append(block)
            into.append(block)

    @property
    def open_block(self) -> str:
        return self.tail.strip("\n")

    def all_blocks(self) -> list[str]:
        blocks = list(self.closed)
        if self.open_block.strip():
            blocks.append(self.open_block)
        return blocks


def split_blocks(text: str) -> list[str]:
    stream = BlockStream()
    stream.feed(text)
    return stream.all_blocks()


def render_markdown(text: str) -> list[str]:
    """A whole stored text → the HTML of each block, as the stream would show it."""
    return [render_block(block) for block in split_blocks(text)]


class StreamedText:
    """A reply's text as it streams: markdown blocks, each closed block rendered
    once, remembering which blocks were already sent to the pages."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.blocks = BlockStream()
        self.closed_html: list[str] = []  # rendered once, when the block closes
        self.sent_closed = 0
        self.open_dirty = False

    def feed(self, text: str) -> None:
        self.pieces.append(text)
        for block in self.blocks.feed(text):
            self.closed_html.append(render_block(block))
        self.open_dirty = True

    @property
    def value(self) -> str:
        return "".join(self.pieces)

    def _open(self) -> list[Block]:
        source = self.blocks.open_block
        return [(len(self.closed_html), render_block(source))] if source.strip() else []

    def changed(self) -> list[Block]:
        changed = [
            (index, self.closed_html[index])
            for index in range(self.sent_closed, len(self.closed_html))
        ]
        self.sent_closed = len(self.closed_html)
        if self.open_dirty:
            changed += self._open()
            self.open_dirty = False
        return changed

    def snapshot(self) -> list[Block]:
        return list(enumerate(self.closed_html)) + self._open()
