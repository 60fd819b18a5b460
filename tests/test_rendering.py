"""Model output → safe HTML, block by block, the same whether streamed or stored."""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conversations.rendering import (
    BlockStream,
    StreamedText,
    render_block,
    render_markdown,
    split_blocks,
)


class _Elements(HTMLParser):
    """The real elements of an HTML fragment, as a browser would build them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {name: value or "" for name, value in attrs}))


SAFE_TAGS = {
    "a", "p", "pre", "code", "span", "img", "table", "thead", "tbody", "tr", "th", "td", "em",
    "strong", "br", "div", "sup", "ul", "li",
    # checked below: only a disabled checkbox, only a plain button
    "input", "button",
    # MathML, which runs nothing (its href, style, maction and annotation-xml are gone)
    "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace",
    "msup", "msub", "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover",
    "mmultiscripts", "mprescripts", "none", "mtable", "mtr", "mtd", "mstyle", "mpadded",
    "mphantom", "menclose", "merror",
}


def _unsafe_parts(html: str) -> list[str]:
    """Everything in `html` that could run script or fetch from elsewhere."""
    found = []
    for tag, attrs in _Elements(html).elements:
        if tag not in SAFE_TAGS:
            found.append(f"<{tag}>")
        if tag == "input" and (attrs.get("type") != "checkbox" or "disabled" not in attrs):
            found.append(f"<input {attrs}>")
        if tag == "button" and attrs.get("type") != "button":
            found.append(f"<button {attrs}>")
        for name in ("id", "name", "form", "href") if tag != "a" else ("id", "name", "form"):
            if name in attrs:
                found.append(f"{tag}[{name}]")  # ids would clobber the page's own
        for name, value in attrs.items():
            url = re.sub(r"[\x00-\x20]", "", value).lower()
            table_alignment = name == "style" and tag in {"td", "th"}
            if name.startswith("on") or (
                name in {"style", "srcdoc", "formaction"} and not table_alignment
            ):
                found.append(f"{tag}[{name}]")
            if name == "href" and not url.startswith(("http://", "https://", "mailto:", "#")):
                found.append(f"{tag}[href={value}]")
            if name == "src" and not re.match(r"data:image/(png|jpeg|gif|webp);base64,", url):
                found.append(f"{tag}[src={value}]")
    return found


XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "Hi <script src=https://evil.example/x.js></script> there",
    "<img src=x onerror=alert(1)>",
    '<img src="data:image/png;base64,AAAA" onerror="alert(1)">',
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<iframe src=https://evil.example></iframe>",
    "<style>body { display: none }</style>",
    "<a href='javascript:alert(1)'>click</a>",
    "<div onmouseover=alert(1)>hover</div>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](javascript:alert(1))",
    '[t](https://ok.example "a\\" onmouseover=\\"alert(1)")',
    "[t](https://ok.example 'a\" onmouseover=\"alert(1)')",
    '![x" onerror="alert(1)](data:image/png;base64,AAAA)',
    '![x" onerror="alert(1)](https://evil.example/x.png)',
    "```\n</code></pre><script>alert(1)</script>\n```",
    '```" onmouseover="alert(1)\ncode\n```',
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "<details open ontoggle=alert(1)>x</details>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    # the constructs that make HTML of their own: math, footnotes, task lists
    r"$\href{javascript:alert(1)}{x}$",
    r"$$\href{javascript:alert(1)}{x}$$",
    r"\(\style{background:url(https://evil.example)}{x}\)",
    r"$\text{</math><img src=x onerror=alert(1)>}$",
    r"$\text{<script>alert(1)</script>}$",
    r"\[\mbox{<a href=javascript:alert(1)>x</a>}\]",
    r"$\color{red}{x} \mathbin{\unicode{60}}$",
    "<math><a href=javascript:alert(1)>x</a></math>",
    "$<math><a href=javascript:alert(1)>x</a></math>$",
    "[^<img src=x onerror=alert(1)>]",
    "Note[^<b>x</b>] and[^\"onmouseover=alert(1)] and[^javascript:alert(1)]",
    "[^<img/src=x/onerror=alert(1)>]: a definition",
    "[^1]: <script>alert(1)</script> [x](javascript:alert(1))",
    "- [x] <img src=x onerror=alert(1)>\n- [ ] [t](javascript:alert(1))",
    "```js\n</code></pre></div><button onclick=alert(1)>x</button>\n```",
]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_it_renders_hostile_model_output_inert(payload):
    html = render_block(payload)

    assert _unsafe_parts(html) == [], html


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_it_keeps_hostile_output_inert_in_a_whole_stored_reply(payload):
    html = "".join(render_markdown(f"Intro.\n\n{payload}\n\nOutro."))

    assert _unsafe_parts(html) == [], html


def test_it_shows_the_text_of_raw_html_instead_of_dropping_it():
    html = render_block("Use <b>bold</b> & <script>x</script>")

    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;script&gt;" in html
    assert "&amp;" in html


def test_it_turns_a_remote_image_into_a_link_so_the_browser_fetches_nothing():
    html = render_block("![a chart](https://tracker.example/pixel.png)")

    assert "<img" not in html
    assert 'href="https://tracker.example/pixel.png"' in html
    assert "[image: a chart]" in html


def test_it_names_a_remote_image_link_by_its_plain_alt_text():
    html = render_block("![*bold* chart](https://tracker.example/pixel.png)")

    assert "[image: bold chart]" in html


def test_it_shows_inline_data_images():
    html = render_block("![plot](data:image/png;base64,iVBORw0KGgo=)")

    assert '<img src="data:image/png;base64,iVBORw0KGgo=" alt="plot">' in html


def test_it_keeps_safe_links_and_marks_them_noopener():
    html = render_block("[docs](https://example.com/docs) and <https://example.org>")

    assert 'href="https://example.com/docs"' in html
    assert 'href="https://example.org"' in html
    assert html.count('rel="noopener noreferrer nofollow"') == 2


def test_it_escapes_quotes_in_a_link_title():
    html = render_block('[t](https://ok.example "say \\"hi\\" <b>")')

    assert 'title="say &quot;hi&quot; &lt;b&gt;"' in html


def test_it_highlights_code_in_a_known_language():
    html = render_block("```python\ndef greet(name):\n    return f'<{name}>'\n```")

    assert '<pre class="highlight"><code class="language-python">' in html
    assert '<span class="k">def</span>' in html
    assert "f'&lt;{name}&gt;'" in re.sub(r"<[^>]+>", "", html)


def test_it_shows_code_in_an_unknown_language_as_plain_escaped_text():
    html = render_block("```no-such-language\n<b>x</b>\n```")

    assert "<pre>" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>" not in html


def test_it_renders_tables_with_alignment_only():
    html = render_block("| a | b |\n|:-|-:|\n| 1 | 2 |")

    assert '<th class="align-left">a</th>' in html
    assert '<td class="align-right">2</td>' in html
    assert "style=" not in html


# -- cutting text into blocks ---------------------------------------------------


def test_it_cuts_blocks_at_blank_lines():
    assert split_blocks("One.\n\nTwo\nstill two.\n\n\nThree.") == [
        "One.", "Two\nstill two.", "Three."
    ]


def test_it_keeps_a_backtick_fence_with_blank_lines_inside_in_one_block():
    text = "Before.\n\n```python\na = 1\n\n\nb = 2\n```\n\nAfter."

    assert split_blocks(text) == ["Before.", "```python\na = 1\n\n\nb = 2\n```", "After."]


def test_it_keeps_a_tilde_fence_with_blank_lines_and_backticks_inside_in_one_block():
    text = "~~~\nx\n\n```\n\ny\n~~~\n\nAfter."

    assert split_blocks(text) == ["~~~\nx\n\n```\n\ny\n~~~", "After."]


def test_it_closes_a_fence_only_with_a_fence_at_least_as_long():
    text = "````\na\n\n```\n\nb\n````\n\nAfter."

    assert split_blocks(text) == ["````\na\n\n```\n\nb\n````", "After."]


def test_an_unclosed_fence_runs_to_the_end_and_renders_as_code():
    blocks = split_blocks("Intro.\n\n```js\nlet a;\n\nlet b;")

    assert blocks == ["Intro.", "```js\nlet a;\n\nlet b;"]
    assert "<pre" in render_block(blocks[1])


def test_it_keeps_a_tight_list_in_one_block():
    assert split_blocks("- a\n- b\n- c\n\nAfter.\n") == ["- a\n- b\n- c", "After."]


def test_it_keeps_a_loose_list_and_its_indented_content_in_one_block():
    text = "1. First\n\n    - nested\n\n2. Second\n\n   more about it\n\nAfter.\n"

    blocks = split_blocks(text)

    assert blocks == ["1. First\n\n    - nested\n\n2. Second\n\n   more about it", "After."]
    html = render_block(blocks[0])
    assert html.count("<ol>") == 1
    assert "<pre>" not in html  # the nested list is not mistaken for indented code


def test_a_list_ends_once_the_next_line_is_complete_and_not_part_of_it():
    stream = BlockStream()

    assert stream.feed("- a\n\n- b\n\nNot a") == []
    assert stream.open_block == "- a\n\n- b\n\nNot a"  # renders the same either way
    assert stream.feed(" list item.\n") == ["- a\n\n- b"]
    assert stream.open_block == "Not a list item."


def test_it_still_cuts_indented_code_after_a_paragraph():
    assert split_blocks("Para.\n\n    code\n\nAfter.") == ["Para.", "    code", "After."]


def test_a_stored_reply_renders_each_block_on_its_own():
    html = render_markdown("# Title\n\nSome *text*.\n\n```py\nx = 1\n```")

    assert len(html) == 3
    assert html[0].startswith("<h1>")
    assert "<em>text</em>" in html[1]
    assert "highlight" in html[2]


def test_an_empty_reply_has_no_blocks():
    assert split_blocks("") == []
    assert split_blocks("\n\n  \n") == []


# -- streaming equals rendering the whole text ------------------------------------

SAMPLE = (
    "Intro with **bold** and `code`.\n\n"
    "- one\n- two\n\n- three, loose\n\n"
    "1. First\n\n    indented continuation\n\n2. Second\n\n"
    "```python\ndef f():\n\n    return 1\n```\n\n"
    "~~~\nraw ``` inside\n\n~~~\n\n"
    "````\n```\nnested fence\n```\n````\n\n"
    "> quote\n> more\n\n"
    "    indented code after a quote\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "Tail without newline"
)


def _stream(text: str, cuts: list[int]) -> tuple[list[str], list[str]]:
    stream = BlockStream()
    closed: list[str] = []
    start = 0
    for cut in [*cuts, len(text)]:
        closed += stream.feed(text[start:cut])
        start = cut
    return closed, stream.all_blocks()


@pytest.mark.parametrize("seed", range(40))
def test_streaming_in_random_chunks_gives_the_same_blocks_as_the_whole_text(seed):
    rng = random.Random(seed)
    text = SAMPLE if seed % 2 == 0 else _random_markdown(rng)
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 60))))

    closed, blocks = _stream(text, cuts)

    assert blocks == split_blocks(text)
    assert closed == blocks[: len(closed)]  # closed blocks are final, in order, never redone
    assert len(closed) >= len(blocks) - 1


def test_streaming_one_character_at_a_time_gives_the_same_blocks():
    _closed, blocks = _stream(SAMPLE, list(range(1, len(SAMPLE))))

    assert blocks == split_blocks(SAMPLE)
    assert [render_block(b) for b in blocks] == render_markdown(SAMPLE)


def _random_markdown(rng: random.Random) -> str:
    pieces = [
        "Plain paragraph.", "Two\nlines.", "- a\n- b", "1. x\n\n2. y", "```\nc\n\nd\n```",
        "~~~py\ne\n\n~~~", "> q", "    code", "# Heading", "| h |\n|---|\n| v |", "",
        "- item\n\n  continued", "***", "Text with trailing spaces   ",
    ]
    seps = ["\n\n", "\n", "\n\n\n", "\n \n"]
    parts = []
    for _ in range(rng.randint(3, 12)):
        parts.append(rng.choice(pieces))
        parts.append(rng.choice(seps))
    return "".join(parts).rstrip("\n") + rng.choice(["", "\n", "\n\n"])


def test_an_upsert_escapes_what_is_not_marked_safe():
    from django.utils.safestring import mark_safe

    from conversations.fragments import upsert

    assert upsert("box", "<b>x</b>") == (
        '<div hx-swap-oob="beforeend:#box" data-upsert>&lt;b&gt;x&lt;/b&gt;</div>')
    assert upsert('a"b', mark_safe("<b>x</b>")) == (
        '<div hx-swap-oob="beforeend:#a&quot;b" data-upsert><b>x</b></div>')


# -- math ------------------------------------------------------------------------


def _visible_text(html: str) -> str:
    """The text a reader sees: tags dropped, the TeX annotations (hidden) too."""
    html = re.sub(r"<annotation\b.*?</annotation>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def test_it_renders_inline_dollar_math_as_mathml_keeping_the_tex():
    html = render_block("Pythagoras: $a^2+b^2=c^2$.")

    assert html.startswith("<p>Pythagoras: <span class=\"math\"><math display=\"inline\">")
    assert "<msup><mi>a</mi><mn>2</mn></msup>" in html
    assert '<annotation encoding="application/x-tex">a^2+b^2=c^2</annotation>' in html


def test_display_math_keeps_its_backslashes():
    html = render_block(r"$$\int_0^1 x\,dx$$")

    assert html.startswith('<div class="math-display"><math display="block">')
    assert "<mo>∫</mo>" in html
    assert '<mspace width="0.167em">' in html  # the \, thin space, not a comma
    assert r'encoding="application/x-tex">\int_0^1 x\,dx</annotation>' in html
    assert "x,dx" not in html


def test_display_math_may_span_lines_and_sit_inside_a_paragraph():
    block = render_block("$$\n\\sum_{i=1}^n i\n$$")
    inline = render_block(r"So $$\frac{1}{2}$$ it is.")

    assert block.startswith('<div class="math-display"><math display="block">')
    assert "<munderover>" in block
    assert inline.startswith('<p>So <span class="math-display"><math display="block">')
    assert "<mfrac>" in inline


def test_backslash_parens_and_brackets_are_math_too():
    inline = render_block(r"Inline \(x_1 + \alpha\) here and \[E = mc^2\] there.")
    block = render_block("\\[\n\\sqrt{2}\n\\]")

    assert inline.count("<math") == 2
    assert '<math display="inline">' in inline and '<math display="block">' in inline
    assert "<mi>α</mi>" in inline
    assert r"\(" not in _visible_text(inline) and r"\[" not in _visible_text(inline)
    assert block.startswith('<div class="math-display"><math display="block">')
    assert "<msqrt>" in block


def test_escaped_dollars_and_escaped_brackets_stay_text():
    html = render_block(r"Not math: \$x\$ and \\(y\\).")

    assert "<math" not in html
    assert "$x$" in _visible_text(html)


@pytest.mark.parametrize("text", [
    "It costs $5 and $10.",
    "Between $5-$10 a month.",
    "Prices: $5, $10, $20.",
    "Pay $ 5 now and $ 6 later.",
    "$100 per seat, $80 if you pay yearly",
])
def test_prices_are_not_math(text):
    html = render_block(text)

    assert "<math" not in html
    assert _visible_text(html) == text


def test_invalid_tex_is_shown_as_its_source_in_code():
    html = render_block(r"Broken: $\frac{1}{$ and $$x^$$")

    assert "<math" not in html
    assert r'<code class="math-error" title="Not valid TeX">$\frac{1}{$</code>' in html
    assert "<code class=\"math-error\" title=\"Not valid TeX\">$$x^$$</code>" in html


def test_the_text_of_tex_is_escaped_not_markup():
    html = render_block(r"$\text{a <b> & c}$")

    assert "<b>" not in html
    assert "&lt;b&gt;" in html


def test_math_with_a_link_keeps_the_math_and_drops_the_link():
    html = render_block(r"$\href{javascript:alert(1)}{x} + \style{color:red}{y}$")

    assert "<mi>x</mi>" in html and "<mi>y</mi>" in html
    assert "href" not in html.replace("\\href", "")
    assert "style" not in html.replace("\\style", "")


def test_math_is_not_touched_inside_code():
    html = render_block("`$x$` and\n\n```\n$$y$$\n```")

    assert "<math" not in html


# -- footnotes --------------------------------------------------------------------

FOOTNOTED = (
    "Gemini says so[^1], and so does the manual[^manual].\n\n"
    "More text.\n\n"
    "[^1]: The first *source*.\n"
    "[^manual]: The [manual](https://example.com/manual)."
)


def test_a_footnote_reference_is_a_superscript_link_to_its_label():
    html = render_block("So it is[^1].")

    assert html == (
        '<p>So it is<sup class="footnote-ref"><a href="#fn-1" data-footnote-ref="1" '
        'rel="noopener noreferrer nofollow">1</a></sup>.</p>\n'
    )


def test_a_footnote_definition_on_its_own_shows_its_text_and_label():
    html = render_block("[^1]: The first *source*.")

    assert html.startswith('<div class="footnote" data-footnote="1">')
    assert '<span class="footnote-label">1</span>' in html
    assert "<em>source</em>" in html
    assert 'data-footnote-back="1"' in html
    assert _visible_text(html) == "1 The first source. ↩"


def test_footnotes_stored_and_streamed_give_the_same_html():
    whole = render_markdown(FOOTNOTED)
    streamed = StreamedText()
    for index in range(0, len(FOOTNOTED), 7):
        streamed.feed(FOOTNOTED[index:index + 7])

    assert [html for _, html in streamed.snapshot()] == whole
    assert len(whole) == 3
    assert whole[0].count('class="footnote-ref"') == 2
    assert 'data-footnote-ref="manual"' in whole[0]
    assert whole[2].count('class="footnote"') == 2
    assert 'href="https://example.com/manual"' in whole[2]


def test_footnote_references_and_definitions_in_one_block_render_in_place():
    html = "".join(render_markdown("A claim[^a].\n[^a]: Its source."))

    assert html.index('data-footnote-ref="a"') < html.index('data-footnote="a"')
    assert "Its source." in html


def test_footnotes_carry_no_ids_so_every_message_may_have_its_own_1():
    html = "".join(render_markdown(FOOTNOTED))

    assert " id=" not in html


def test_a_footnote_label_with_markup_is_escaped():
    html = render_block('See[^<b>x</b>] and[^a"b].\n\n[^<i>y</i>]: def')

    assert "<b>" not in html and "<i>" not in html
    assert 'data-footnote-ref="&lt;b&gt;x&lt;/b&gt;"' in html
    assert 'href="#fn-%3Cb%3Ex%3C%2Fb%3E"' in html
    assert 'data-footnote-ref="a&quot;b"' in html


# -- task lists ---------------------------------------------------------------------


def test_task_lists_render_disabled_checkboxes():
    html = render_block("- [x] done\n- [ ] todo\n- plain")

    elements = _Elements(html).elements
    boxes = [attrs for tag, attrs in elements if tag == "input"]
    assert boxes == [
        {"class": "task-list-item-checkbox", "checked": "checked", "disabled": "disabled",
         "type": "checkbox"},
        {"class": "task-list-item-checkbox", "disabled": "disabled", "type": "checkbox"},
    ]
    assert '<ul class="contains-task-list">' in html
    assert html.count('<li class="task-list-item">') == 2
    assert "<li>plain</li>" in html
    assert "[x]" not in html and "[ ]" not in html


# -- code blocks ----------------------------------------------------------------------


def test_each_fenced_code_block_has_a_copy_button():
    html = render_block("```python\nprint(1)\n```")
    plain = render_block("```\n<b>plain</b>\n```")

    assert html.startswith(
        '<div class="code-block">'
        '<button class="code-copy" aria-label="Copy code" type="button">Copy</button>'
        '<pre class="highlight"><code class="language-python">'
    )
    assert plain.startswith('<div class="code-block"><button class="code-copy"')
    assert "&lt;b&gt;plain&lt;/b&gt;" in plain


def test_inline_and_indented_code_have_no_copy_button():
    assert "button" not in render_block("Some `code` here.")
    assert "button" not in render_block("    indented code")


def test_the_labels_rendered_in_python_go_through_gettext_at_each_render(monkeypatch):
    from conversations import rendering

    monkeypatch.setattr(rendering, "gettext", lambda text: f"«{text}»")

    assert ('<button class="code-copy" aria-label="«Copy code»" type="button">«Copy»</button>'
            in render_block("```\nx\n```"))
    assert 'aria-label="«Back to the text»"' in render_block("[^1]: x")
    assert 'title="«Not valid TeX»"' in render_block("$x^$")


# -- colours: the light and the dark theme keep text readable ----------------------

_CSS = Path(__file__).resolve().parent.parent / "static" / "css"
DARK = ':root[data-theme="dark"]'  # static/js/theme.js sets it: the system's or one chosen
# (text, background) pairs the stylesheets use
TEXT_ON = [
    ("ink", "bg"), ("ink", "panel"), ("muted", "bg"), ("muted", "panel"), ("faint", "panel"),
    ("accent", "panel"), ("accent", "bg"), ("accent-ink", "accent"), ("danger", "panel"),
    ("danger", "error-bg"), ("warn", "warn-bg"), ("warn", "panel"), ("ok", "ok-bg"),
    ("ok", "panel"), ("info", "info-bg"), ("sim", "sim-bg"), ("estimated", "estimated-bg"),
    ("muted", "badge-bg"), ("ink", "user-bg"), ("code-ink", "code-bg"), ("muted", "code-bg"),
    ("placeholder-ink", "panel"), ("ink", "mark-bg"), ("ink", "footnote-target"),
    ("muted", "footnote-target"), ("side-ink", "side-bg"), ("side-muted", "side-bg"),
    ("side-link", "side-bg"), ("side-warn", "side-bg"), ("side-ink", "side-current"),
    ("ink", "field-bg"),
]


def _theme_variables() -> tuple[dict[str, str], dict[str, str]]:
    css = (_CSS / "app.css").read_text()
    root = css[css.index(":root {"):]
    light_part = root[:root.index(DARK)]
    dark_part = root[root.index(DARK):]
    dark_part = dark_part[:dark_part.index("\n}")]
    pattern = re.compile(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})\b")
    light = dict(pattern.findall(light_part))
    return light, {**light, **dict(pattern.findall(dark_part))}


def _luminance(colour: str) -> float:
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    channels = [int(colour[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    high, low = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_text_colour_has_aa_contrast_on_its_background(theme):
    light, dark = _theme_variables()
    colours = light if theme == "light" else dark
    code_ink = colours.get("code-ink", colours["ink"])  # light: var(--ink)

    poor = [
        (text, background, round(ratio, 2))
        for text, background in TEXT_ON
        if (ratio := _contrast(code_ink if text == "code-ink" else colours[text],
                               colours[background])) < 4.5
    ]

    assert poor == []


def test_the_dark_theme_is_dark_and_sets_every_colour_it_needs():
    _light, dark = _theme_variables()

    assert _luminance(dark["bg"]) < 0.02 and _luminance(dark["panel"]) < 0.03
    assert _luminance(dark["ink"]) > 0.7
    css = (_CSS / "app.css").read_text()
    assert "color-scheme: light;" in css and "color-scheme: dark;" in css  # form controls too


@pytest.mark.parametrize(("style", "theme"), [("xcode", "light"), ("github-dark", "dark")])
def test_highlighted_code_is_readable_in_both_themes(style, theme):
    from pygments.styles import get_style_by_name
    from pygments.token import Error, Keyword, Whitespace

    light, dark = _theme_variables()
    background = (light if theme == "light" else dark)["code-bg"]
    css = (_CSS / "pygments.css").read_text()
    light_rules, dark_rules = css.split(DARK)
    token_colours = {
        colour for token, rule in get_style_by_name(style)
        if (colour := rule["color"]) and token not in Whitespace and token not in Error
    }

    assert all(_contrast(f"#{c}", background) >= 4.5 for c in token_colours)
    # the stylesheet is what pygments generates for the style, in its place
    rules = light_rules if theme == "light" else dark_rules
    keyword = get_style_by_name(style).styles[Keyword].split()[-1]
    assert f".highlight .k {{ color: {keyword}".lower() in rules.lower()
