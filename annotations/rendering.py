"""A reply's Markdown rendered to safe HTML with a source map back to the stored text.

Reviewers read the formatted reply but annotate the stored text: selectors count code points of ``Turn.content``
(docs/review.md, "Anchoring"). So every piece of text the renderer writes is wrapped in
``<span data-src-start="s" data-src-end="e">``, where [s, e) is the code-point range of the stored text it came
from. Where the span's text and its range correspond character for character (plain text, code) the browser
converts offsets one to one; otherwise (an entity such as ``&amp;``, a backslash escape, a line ending ``\\r\\n``)
the span is marked ``md-atomic`` and stands for its whole range. The browser converts a selection through these
spans to source offsets, and paints a highlight by finding the spans its range covers (static/js/review.js).

Why markdown-it-py with ``html`` off and then nh3: markdown-it is a CommonMark parser whose tokens say where each
block starts (line maps), which the source map needs; with ``html`` off, raw HTML in a reply (``<script>``,
``hx-get``) is text and comes out escaped. nh3 (ammonia) then keeps only an allow-list of tags and attributes, in
case a renderer rule or a future plugin ever lets markup through. Inline positions are not in markdown-it's tokens:
each inline text token is a verbatim slice of its block's source lines, so it is found from a running position
(``_Mapper``), skipping the markup between (emphasis markers, backticks, link destinations).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.helpers import parseLinkDestination, parseLinkTitle
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdurl import decode as url_decode

#: What a rendered reply may contain after sanitising; everything else is dropped (its text kept).
ALLOWED_TAGS = set(
    "p br hr h1 h2 h3 h4 h5 h6 ul ol li blockquote pre code em strong s a span table thead tbody tr th td".split()
)
#: Classes are allowed per tag by ``ALLOWED_CLASSES`` (nh3 wants ``class`` left out of this one).
ALLOWED_ATTRIBUTES = {
    "span": {"data-src-start", "data-src-end", "title"},
    "a": {"href", "title"},
    "ol": {"start"},
}
ALLOWED_CLASSES = {
    "span": {"md-image", "md-atomic"},
    "pre": {"md-code"},
    "th": {"md-left", "md-center", "md-right"},
    "td": {"md-left", "md-center", "md-right"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    # Escapes and entities stay tokens of their own (text_special), so each maps onto its own source range.
    md.disable("text_join")
    return md


_MD = _parser()


@dataclass
class Rendered:
    html: str
    #: False when the reply is plain prose (paragraphs of text only), where the formatted view would show nothing
    #: the raw one does not.
    formatted: bool


class _Mapper:
    """Assigns each text-bearing token its [start, end) in the normalised source (``meta["src"]``)."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.line_starts = [0]
        for i, ch in enumerate(src):
            if ch == "\n":
                self.line_starts.append(i + 1)

    def line_start(self, line: int) -> int:
        return self.line_starts[line] if line < len(self.line_starts) else len(self.src)

    def blocks(self, tokens: list[Token]) -> None:
        for token in tokens:
            if token.map:
                self.pos = max(self.pos, self.line_start(token.map[0]))
            if token.type == "inline" and token.children is not None:
                limit = self.line_start(token.map[1]) if token.map else len(self.src)
                self.inline(token.children, limit)
            elif token.type in ("fence", "code_block") and token.map:
                self.code(token)

    def _find(self, needle: str, limit: int) -> int:
        return self.src.find(needle, self.pos, limit) if needle else -1

    def _claim(self, token: Token, start: int, end: int) -> None:
        if start >= self.pos:
            token.meta["src"] = (start, end)
            self.pos = end

    def inline(self, children: list[Token], limit: int) -> None:
        for token in children:
            kind = token.type
            if kind == "text":
                at = self._find(token.content, limit)
                if at >= 0:
                    self._claim(token, at, at + len(token.content))
                elif "|" in token.content:  # a table cell's escaped pipes reach the inline parser unescaped
                    source = token.content.replace("|", "\\|")
                    at = self._find(source, limit)
                    if at >= 0:
                        self._claim(token, at, at + len(source))
            elif kind == "text_special":
                at = self._find(token.markup, limit)
                if at >= 0:
                    self._claim(token, at, at + len(token.markup))
            elif kind in ("softbreak", "hardbreak"):
                at = self._find("\n", limit)
                if at >= 0:
                    self._claim(token, at, at + 1)
            elif kind == "code_inline":
                self.code_inline(token, limit)
            elif kind == "image":
                self.inline(token.children or [], limit)
                self.skip_destination(limit)
            elif kind == "link_close":
                if token.markup == "autolink":
                    at = self._find(">", limit)
                    self.pos = at + 1 if at >= 0 else self.pos
                else:
                    self.skip_destination(limit)

    def code_inline(self, token: Token, limit: int) -> None:
        opening = self._find(token.markup, limit)
        if opening < 0:
            return
        inner = opening + len(token.markup)
        run = re.compile(f"(?<!`){re.escape(token.markup)}(?!`)")
        found = run.search(self.src, inner, limit)
        closing = found.start() if found else -1
        # The content drops one space on each side when both are there; elsewhere it equals the source unless the
        # span runs over a line end (then the whole span stands for its range).
        at = self.src.find(token.content, inner, closing if closing >= 0 else limit)
        if at >= 0 and at <= inner + 1:
            token.meta["src"] = (at, at + len(token.content))
        elif closing >= 0:
            token.meta["src"] = (inner, closing)
        self.pos = closing + len(token.markup) if closing >= 0 else inner

    def skip_destination(self, limit: int) -> None:
        """After a link's (or image's) text: past ``](destination "title")``, ``][label]`` or ``]``."""
        close = self._find("]", limit)
        if close < 0:
            return
        pos = close + 1
        if pos < limit and self.src[pos] == "(":
            pos += 1
            while pos < limit and self.src[pos] in " \t\n":
                pos += 1
            dest = parseLinkDestination(self.src, pos, limit)
            if dest.ok:
                pos = dest.pos
                while pos < limit and self.src[pos] in " \t\n":
                    pos += 1
                title = parseLinkTitle(self.src, pos, limit)
                if title.ok:
                    pos = title.pos
            end = self.src.find(")", pos, limit)
            pos = end + 1 if end >= 0 else pos
        elif pos < limit and self.src[pos] == "[":
            end = self.src.find("]", pos, limit)
            pos = end + 1 if end >= 0 else pos
        self.pos = pos

    def code(self, token: Token) -> None:
        """Each line of a code block maps onto the end of its source line (the block's indentation, a list's or a
        quote's prefix come before it), the newline after it onto the source's line end. A line that is not the end
        of its source line (a tab only partly taken by the indentation) stays unmapped."""
        first = token.map[0] + (1 if token.type == "fence" else 0)
        content = token.content[:-1] if token.content.endswith("\n") else token.content
        mapped = []
        for number, line in enumerate(content.split("\n") if content else [], start=first):
            start, stop = self.line_start(number), self.line_start(number + 1)
            source_line = self.src[start:stop].rstrip("\n")
            line_src = newline_src = None
            if number < token.map[1] and start >= self.pos and source_line.endswith(line):
                begin = start + len(source_line) - len(line)
                line_src = (begin, begin + len(line))
                if self.src[stop - 1 : stop] == "\n":
                    newline_src = (stop - 1, stop)
                self.pos = stop
            mapped.append((line, (line_src, newline_src)))
        token.meta["lines"] = mapped


def _span(text: str, src: tuple[int, int] | None, stored: str, offsets: list[int]) -> str:
    """``text`` in a span carrying its range of the stored text; ``md-atomic`` when the two do not correspond
    character for character (the span then stands for its whole range)."""
    escaped = _escape(text)
    if src is None or not text:
        return escaped
    start, end = offsets[src[0]], offsets[src[1]]
    atomic = "" if _linear(text, stored[start:end]) else ' class="md-atomic"'
    return f'<span data-src-start="{start}" data-src-end="{end}"{atomic}>{escaped}</span>'


def _linear(rendered: str, source: str) -> bool:
    # A code span spread over lines shows its line endings as spaces: still one character each.
    return len(rendered) == len(source) and all(
        r == s or (s == "\n" and r == " ") for r, s in zip(rendered, source, strict=True)
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _rules(stored: str, offsets: list[int]) -> dict[str, Any]:
    """markdown-it renderer rules for the tokens that carry text: each writes source-mapped spans (``offsets``: from
    positions of the normalised text to those of the ``stored`` one)."""

    def text(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return _span(tokens[idx].content, tokens[idx].meta.get("src"), stored, offsets)

    def softbreak(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return _span("\n", tokens[idx].meta.get("src"), stored, offsets)

    def hardbreak(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return "<br>" + _span("\n", tokens[idx].meta.get("src"), stored, offsets)

    def code_inline(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return f"<code>{_span(tokens[idx].content, tokens[idx].meta.get('src'), stored, offsets)}</code>"

    def code_block(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        parts = []
        for line, (line_src, newline_src) in tokens[idx].meta.get("lines", []):
            parts.append(_span(line, line_src, stored, offsets))
            parts.append(_span("\n", newline_src, stored, offsets))
        return f'<pre class="md-code"><code>{"".join(parts)}</code></pre>\n'

    def image(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        # Images are not loaded (a reply could track its readers); their alt text stands in, mapped.
        token = tokens[idx]
        alt = "".join(text(token.children, i, options, env) for i in range(len(token.children or [])))
        title = _escape(url_decode(token.attrGet("src") or ""))
        return f'<span class="md-image" title="Image: {title}">{alt}</span>'

    return {
        "text": text,
        "text_special": text,
        "softbreak": softbreak,
        "hardbreak": hardbreak,
        "code_inline": code_inline,
        "code_block": code_block,
        "fence": code_block,
        "image": image,
    }


def _normalised(text: str) -> tuple[str, list[int]]:
    """The text as markdown-it normalises it (CR LF and CR become LF, NUL becomes U+FFFD), and for each of its
    positions (and its end) the position in ``text``: a CR LF is one character shorter there."""
    out: list[str] = []
    offsets: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        offsets.append(i)
        if ch == "\r":
            out.append("\n")
            i += 2 if text[i + 1 : i + 2] == "\n" else 1
            continue
        out.append("\ufffd" if ch == "\0" else ch)
        i += 1
    offsets.append(len(text))
    return "".join(out), offsets


def _align_tables(tokens: list[Token]) -> None:
    # markdown-it aligns table cells with an inline style, which the CSP forbids: a class instead.
    for token in tokens:
        style = token.attrGet("style") if token.type in ("th_open", "td_open") else None
        if style and style.startswith("text-align:"):
            token.attrs.pop("style")
            token.attrSet("class", f"md-{style.split(':', 1)[1].strip()}")


def _plain(tokens: list[Token]) -> bool:
    """Only paragraphs of text: the raw view shows all the formatted one would (its line breaks even better)."""
    return all(t.type in ("paragraph_open", "inline", "paragraph_close") for t in tokens) and all(
        c.type in ("text", "softbreak") for t in tokens for c in t.children or []
    )


def render_markdown(text: str) -> Rendered:
    """The reply as sanitised HTML whose text spans map onto code points of ``text`` (see the module's doc)."""
    src, offsets = _normalised(text)
    tokens = _MD.parse(src)
    _Mapper(src).blocks(tokens)
    _align_tables(tokens)
    # A renderer per call: its rules need this reply's offsets.
    renderer = RendererHTML()
    renderer.rules.update(_rules(text, offsets))
    html = renderer.render(tokens, _MD.options, {})
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes=URL_SCHEMES,
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
    )
    return Rendered(html=clean, formatted=not _plain(tokens))


def pretty_json(value: Any) -> str:
    """Tool calls and JSON context as people read JSON: indented, keys in their stored order, non-ASCII kept."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def json_or_text(text: str) -> str:
    """A turn's content formatted as JSON when it is a JSON object or array (tool results), else unchanged."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return text
    try:
        return pretty_json(json.loads(stripped))
    except ValueError:
        return text
