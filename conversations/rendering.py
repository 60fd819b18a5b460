"""Model output → safe HTML, one markdown block at a time.

A reply is cut into blocks at blank lines outside code fences. A finished
block never changes, so while a reply streams only the last, still-open
block is re-rendered and re-sent; each block is swapped into the page by its
own id. The page render of a stored reply uses the same splitter, so what a
reloaded page shows is exactly what the stream built.

Besides CommonMark, tables and strikethrough, the markdown models write is
understood: TeX math (`$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`) becomes MathML,
which the browser typesets itself, with the TeX kept in an annotation;
footnotes and task lists work. A footnote's reference and its definition are
usually in different blocks, each rendered on its own, so neither needs the
other: a reference is a link to its label, a definition is shown where it was
written, and static/js/markdown.js follows a reference to the definition of
the same label within the same message (no ids: every message has its own
`[^1]`). Each fenced code block has a Copy button (static/js/markdown.js).

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
from urllib.parse import quote
from xml.etree.ElementTree import tostring

import nh3
from django.utils.translation import gettext
from latex2mathml.converter import convert_to_element as latex_to_mathml
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
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
    "a", "abbr", "b", "blockquote", "br", "button", "code", "del", "div", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "input", "kbd", "li", "ol", "p", "pre", "s",
    "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
# MathML Core, as latex2mathml writes it. Left out on purpose: maction,
# annotation-xml (may hold HTML), mglyph (fetches an image), and the href,
# style, mathcolor and mathbackground attributes.
MATHML_TAGS = {
    "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace",
    "msup", "msub", "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover",
    "mmultiscripts", "mprescripts", "none", "mtable", "mtr", "mtd", "mstyle", "mpadded",
    "mphantom", "menclose", "merror",
}
_MATH_SIZES = {"width", "height", "depth", "lspace", "rspace", "voffset"}
MATHML_ATTRIBUTES = {
    "math": {"display"},
    "annotation": {"encoding"},
    "mi": {"mathvariant"},
    "mn": {"mathvariant"},
    "mtext": {"mathvariant"},
    "mo": {"stretchy", "fence", "form", "separator", "lspace", "rspace", "accent", "largeop",
           "movablelimits", "symmetric", "minsize", "maxsize", "mathvariant"},
    "mspace": _MATH_SIZES,
    "mpadded": _MATH_SIZES,
    "mfrac": {"linethickness"},
    "mover": {"accent"},
    "munder": {"accentunder"},
    "munderover": {"accent", "accentunder"},
    "mtable": {"columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines",
               "rowlines", "frame", "displaystyle"},
    "mtr": {"columnalign", "rowalign"},
    "mtd": {"columnalign", "rowalign", "columnspan", "rowspan"},
    "mstyle": {"displaystyle", "scriptlevel", "mathvariant"},
    "menclose": {"notation"},
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "class", "data-footnote-ref", "data-footnote-back", "aria-label"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "td": {"class"},
    "th": {"class"},
    "span": {"class"},
    "code": {"class", "title"},
    "pre": {"class"},
    "div": {"class", "data-footnote"},
    "sup": {"class"},
    "ul": {"class"},
    "li": {"class"},
    "button": {"class", "aria-label"},
    "input": {"class", "checked"},
    **MATHML_ATTRIBUTES,
}
# Set on every such element whatever the markup said: the only buttons are the
# code blocks' Copy buttons, the only inputs the task lists' checkboxes.
_FORCED_ATTRIBUTES = {
    "button": {"type": "button"},
    "input": {"type": "checkbox", "disabled": "disabled"},
}
_FIXED_CLASSES = {
    "button": {"code-copy"},
    "input": {"task-list-item-checkbox"},
    "ul": {"contains-task-list"},
    "li": {"task-list-item"},
    "a": {"footnote-backref"},
    "sup": {"footnote-ref"},
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
    if attribute == "class" and tag in _FIXED_CLASSES:
        return value if value in _FIXED_CLASSES[tag] else None
    return value


# Built once: nh3.clean() rebuilds its whole configuration on every call,
# which costs four times the cleaning itself (it runs for every frame).
_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS | MATHML_TAGS,
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes={"http", "https", "mailto", "data"},
    attribute_filter=_attribute_filter,
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values=_FORCED_ATTRIBUTES,
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


def _render_fence(renderer, tokens, idx, options, env) -> str:
    # A fenced code block with its Copy button; static/js/markdown.js does the copying.
    code = RendererHTML.fence(renderer, tokens, idx, options, env)
    # Named "Copy code": the reply's own Copy button (the whole markdown) is "Copy".
    name, label = _escape(gettext("Copy code")), _escape(gettext("Copy"))
    return (
        f'<div class="code-block"><button type="button" class="code-copy" aria-label="{name}">'
        f"{label}</button>{code}</div>\n"
    )


# -- math ---------------------------------------------------------------------------

_MATH_CLOSERS = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
_CHARACTER_REFERENCE = re.compile(r"&amp;(#x[0-9a-fA-F]{1,6};)")


def _mathml(tex: str, *, display: bool) -> str:
    """TeX → MathML, the TeX kept as its annotation (for copying and screen readers).

    latex2mathml's own convert() unescapes its whole output to turn its
    character references back into characters, which also unescapes the
    text of \\text{…}: serialised here instead, only the references are
    restored."""
    math = latex_to_mathml(tex, display="block" if display else "inline")
    inner = "".join(_CHARACTER_REFERENCE.sub(r"&\1", tostring(child, encoding="unicode"))
                    for child in math)
    return (
        f'<math display="{"block" if display else "inline"}"><semantics><mrow>{inner}</mrow>'
        f'<annotation encoding="application/x-tex">{_escape(tex)}</annotation>'
        "</semantics></math>"
    )


def _render_math(renderer, tokens, idx, options, env) -> str:
    token = tokens[idx]
    tex = token.content.strip()
    display = token.type != "math_inline"
    try:
        html = _mathml(tex, display=display)
    except Exception:  # latex2mathml raises many kinds of error on TeX it cannot read
        opening = token.markup or ("$$" if display else "$")
        source = f"{opening}{token.content}{_MATH_CLOSERS.get(opening, opening)}"
        return f'<code class="math-error" title="{_escape(gettext("Not valid TeX"))}">' \
               f"{_escape(source)}</code>"
    if token.type == "math_block":
        return f'<div class="math-display">{html}</div>\n'
    return f'<span class="math{"-display" if display else ""}">{html}</span>'


def _math_brackets_inline(state: StateInline, silent: bool) -> bool:
    """`\\(…\\)` inline and `\\[…\\]` displayed within a paragraph. It runs before
    markdown's backslash escapes, which would eat the first backslash."""
    src, start = state.src, state.pos
    opening = src[start:start + 2]
    if opening not in ("\\(", "\\["):
        return False
    end = src.find(_MATH_CLOSERS[opening], start + 2, state.posMax)
    if end < 0 or not src[start + 2:end].strip():
        return False
    if not silent:
        token = state.push("math_inline" if opening == "\\(" else "math_inline_double", "math", 0)
        token.content = src[start + 2:end]
        token.markup = opening
    state.pos = end + 2
    return True


def _math_brackets_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """`\\[ … \\]` on lines of their own."""
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False  # indented code
    begin = state.bMarks[start_line] + state.tShift[start_line]
    if not state.src.startswith("\\[", begin):
        return False
    line = start_line
    while line < end_line:
        first = begin + 2 if line == start_line else state.bMarks[line] + state.tShift[line]
        text = state.src[first:state.eMarks[line]].rstrip()
        if line > start_line and not text and state.isEmpty(line):
            return False
        if text.endswith("\\]"):
            break
        if "\\]" in text:
            return False  # text after the closing bracket: a paragraph's inline math
        line += 1
    else:
        return False
    if silent:
        return True
    content_end = state.src.rindex("\\]", begin, state.eMarks[line])
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = state.src[begin + 2:content_end]
    token.markup = "\\["
    token.map = [start_line, line + 1]
    state.line = line + 1
    return True


# -- footnotes -----------------------------------------------------------------------
# A reference and its definition are rendered apart (different blocks), so
# each shows its own label; markdown.js links them within one message.


def _render_footnote_ref(renderer, tokens, idx, options, env) -> str:
    label = str(tokens[idx].meta["label"])
    return (
        f'<sup class="footnote-ref"><a href="#fn-{quote(label, safe="")}" '
        f'data-footnote-ref="{_escape(label)}">{_escape(label)}</a></sup>'
    )


def _render_footnote_open(renderer, tokens, idx, options, env) -> str:
    label = str(tokens[idx].meta["label"])
    return (
        f'<div class="footnote" data-footnote="{_escape(label)}">'
        f'<span class="footnote-label">{_escape(label)}</span> <div class="footnote-body">'
    )


def _render_footnote_close(renderer, tokens, idx, options, env) -> str:
    label = str(tokens[idx].meta["label"])
    back = _escape(gettext("Back to the text"))
    return (
        f'</div><a href="#fnref-{quote(label, safe="")}" class="footnote-backref" '
        f'data-footnote-back="{_escape(label)}" aria-label="{back}">↩</a></div>\n'
    )


def _label_footnote_close(state) -> None:
    # The close token of a definition knows its label too (for the back link).
    labels = []
    for token in state.tokens:
        if token.type == "footnote_reference_open":
            labels.append(token.meta["label"])
        elif token.type == "footnote_reference_close" and labels:
            token.meta = {"label": labels.pop()}


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight, "breaks": False})
    md.enable(["table", "strikethrough"])
    # No space inside the dollars and no digit after the closing one: "$5 and $10" is money.
    dollarmath_plugin(md, allow_labels=False, allow_space=False, allow_digits=False,
                      allow_blank_lines=False, double_inline=True)
    md.inline.ruler.before("escape", "math_brackets", _math_brackets_inline)
    md.block.ruler.before("fence", "math_brackets_block", _math_brackets_block,
                          {"alt": ["paragraph", "reference", "blockquote", "list"]})
    for kind in ("math_inline", "math_inline_double", "math_block"):
        md.add_render_rule(kind, _render_math)
    # References match whether or not their definition is in the same block,
    # and definitions stay where they were written.
    footnote_plugin(md, inline=False, move_to_end=False, always_match_refs=True)
    md.core.ruler.after("inline", "footnote_close_label", _label_footnote_close)
    md.add_render_rule("footnote_ref", _render_footnote_ref)
    md.add_render_rule("footnote_reference_open", _render_footnote_open)
    md.add_render_rule("footnote_reference_close", _render_footnote_close)
    tasklists_plugin(md)  # disabled checkboxes
    md.add_render_rule("fence", _render_fence)
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
