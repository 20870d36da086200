"""An answer's markdown as the HTML the transcript shows: CommonMark with GitHub's tables and
strikethrough, code blocks highlighted by Pygments under a bar with their language and a Copy link,
links kept as links (opened only on a click, by the transcript). Nothing in an answer runs or is
fetched: raw HTML is shown as text, and an image is a link to its address, never loaded."""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

COPY_CODE = "copycode"  # the scheme of a code block's Copy link: copycode:<its index in the transcript>
LINK_SCHEMES = ("http", "https", "mailto")  # what a click on an answer's link may open


@dataclass(frozen=True)
class Colours:
    """The code blocks' and tables' colours for the window's scheme."""

    code_background: str
    code_bar: str
    rule: str
    muted: str
    pygments_style: str


LIGHT = Colours("#f6f8fa", "#eaeef2", "#afb8c1", "#616161", "default")
DARK = Colours("#161b22", "#21262d", "#59636e", "#bdbdbd", "github-dark")


@dataclass
class Rendered:
    """An answer as HTML and the code of its blocks, in order (what their Copy links copy)."""

    html: str
    code: list[str] = field(default_factory=list)


def render(text: str, colours: Colours, first_code: int = 0) -> Rendered:
    """`text` (markdown) as HTML; its code blocks' Copy links are numbered from `first_code`."""
    out = Rendered("")
    # A code block still being written is shown plain: highlighting it again at every refresh costs
    # its whole length each time (20 ms for 150 lines), and its language may still be half-written.
    env = {"colours": colours, "first_code": first_code, "code": out.code, "open_fence": fence_open(text)}
    out.html = _MD.renderer.render(_MD.parse(text, env), _MD.options, env)
    return out


# The rules below are markdown-it's HTML with what Qt's rich text needs spelled out (tables with
# borders, code as a one-cell table with a background) and what an answer must not do taken out.
# Each reads the render's colours and code list from its env.
def _code(_self: Any, tokens: Sequence[Token], idx: int, _options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    language = token.info.strip().split(" ")[0] if token.info else ""
    source = token.content.removesuffix("\n")
    code: list[str] = env["code"]
    index = env["first_code"] + len(code)
    code.append(source)
    c: Colours = env["colours"]
    label = html.escape(language) if language else "code"
    still_written = (
        env["open_fence"] and token.type == "fence" and not any(t.type == "fence" for t in tokens[idx + 1 :])
    )
    shown = html.escape(source) if still_written else highlighted(source, language, c.pygments_style)
    return (
        f"<table width='100%' cellspacing='0' cellpadding='6' bgcolor='{c.code_background}' "
        "style='margin-top:6px; margin-bottom:6px'>"
        f"<tr><td bgcolor='{c.code_bar}'><small style='color:{c.muted}'>{label}</small>"
        f"&nbsp;&nbsp;&nbsp;<a href='{COPY_CODE}:{index}'><small>Copy</small></a></td></tr>"
        f"<tr><td><pre style='margin:0'>{shown}</pre></td></tr>"
        "</table>\n"
    )


def _image(_self: Any, tokens: Sequence[Token], idx: int, _options: Any, _env: Any) -> str:
    token = tokens[idx]
    alt = html.escape(token.content or "image")
    src = str(token.attrGet("src") or "")
    if src.split(":", 1)[0].lower() in LINK_SCHEMES:
        return f"<a href='{html.escape(src, quote=True)}'>[image: {alt}]</a>"
    return f"[image: {alt}]"


def _table_open(_self: Any, _tokens: Sequence[Token], _idx: int, _options: Any, env: dict[str, Any]) -> str:
    rule = env["colours"].rule
    return (
        "<table border='1' cellspacing='0' cellpadding='4' style='border-collapse:collapse; "
        f"border-style:solid; border-color:{rule}; margin-top:4px; margin-bottom:4px'>\n"
    )


def _link_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    if str(tokens[idx].attrGet("href") or "").split(":", 1)[0].lower() not in LINK_SCHEMES:
        tokens[idx].attrSet("href", "")  # a relative or local address is shown, never followed
    return str(self.renderToken(tokens, idx, options, env))


def _parser() -> MarkdownIt:
    # breaks: a single line break stays a break, as in every chat app (a poem, an address).
    md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
    for name, rule in (
        ("fence", _code),
        ("code_block", _code),
        ("image", _image),
        ("table_open", _table_open),
        ("link_open", _link_open),
    ):
        md.add_render_rule(name, rule)
    return md


_MD = _parser()


def highlighted(source: str, language: str, style: str) -> str:
    """Code as HTML spans coloured by Pygments (its inline styles: Qt has no stylesheet classes);
    a language Pygments does not know is shown plain."""
    lexer = _lexer(language.lower())
    if lexer is None:
        return html.escape(source)
    return highlight(source, lexer, _formatter(style)).removesuffix("\n")


@functools.cache
def _lexer(language: str) -> Any:
    """Pygments' lexer for a language name, or None; remembered, misses too (an unknown name makes
    Pygments look through every lexer it has)."""
    if not language:
        return None
    try:
        return get_lexer_by_name(language)
    except ClassNotFound:
        return None


@functools.cache
def _formatter(style: str) -> HtmlFormatter:
    return HtmlFormatter(nowrap=True, noclasses=True, style=style)


def fence_open(text: str) -> bool:
    """Whether the text ends inside a code fence (one opened and not yet closed)."""
    fence = ""
    for line in text.split("\n"):
        fence = _fence_after(fence, line)
    return bool(fence)


def _fence_after(fence: str, line: str) -> str:
    """The code fence open after `line` ("" outside one), given the one open before it: a fence
    closes on a line of its own characters alone."""
    stripped = line.lstrip()
    if fence:
        closes = stripped.startswith(fence) and not stripped[len(fence) :].strip(fence[0]).strip()
        return "" if closes else fence
    return stripped[:3] if stripped.startswith(("```", "~~~")) else ""


def settled_end(text: str, start: int) -> int:
    """Where the part of a streamed answer that can no longer change its rendering ends: after the
    last blank line, outside a code fence, followed by a line that starts a new block at the margin
    (an indented one may still belong to a list item above). `start` if there is none yet."""
    end, fence, offset = start, "", start
    lines = text[start:].split("\n")
    for i, line in enumerate(lines[:-1]):  # the last line is still being written
        offset += len(line) + 1
        before, fence = fence, _fence_after(fence, line)
        if before or fence:  # inside a code block, or its opening or closing line
            continue
        following = lines[i + 1]
        if not line.strip() and following[:1] not in ("", " ", "\t"):
            end = offset
    return end
