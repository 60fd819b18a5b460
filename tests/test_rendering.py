"""Model output → safe HTML, block by block, the same whether streamed or stored."""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser

import pytest

from conversations.rendering import BlockStream, render_block, render_markdown, split_blocks


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
    "strong", "br",
}


def _unsafe_parts(html: str) -> list[str]:
    """Everything in `html` that could run script or fetch from elsewhere."""
    found = []
    for tag, attrs in _Elements(html).elements:
        if tag not in SAFE_TAGS:
            found.append(f"<{tag}>")
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
