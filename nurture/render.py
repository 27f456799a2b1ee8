"""Mail templates: Markdown with Jinja expressions, rendered to an HTML and a text part.

A template is first rendered by a sandboxed Jinja environment in which every
``{{ value }}`` is escaped for Markdown (so a lead who types ``[x](https://…)``
or ``<b>`` gets exactly that text, never a link or markup), then parsed by
markdown-it with raw HTML off and no auto-linking. Links may only have literal
targets written in the template; the list of those targets is what the click
redirect may lead to. Remote images are refused: they tell the sender when a
mail was opened.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it import MarkdownIt
from markdown_it.token import Token

from leadvault.untrusted import defuse

# What a template may use; every value is a string ("" when the lead did not tell us).
VARIABLES = ("greeting", "first_name", "last_name", "company", "job_title")
SAMPLE = {
    "greeting": "Hi Julia,",
    "first_name": "Julia",
    "last_name": "Example",
    "company": "Example GmbH",
    "job_title": "Head of Marketing",
}
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_SCHEMES_UNTRACKED = ("mailto:", "tel:")


class TemplateProblem(Exception):
    """A template error; ``line`` counts from the template's first line (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _markdown_escape(value: Any) -> str:
    """Everything a ``{{ }}`` prints is text a lead typed: one line, link-like text
    defused (mail clients autolink ``evil.example``), Markdown punctuation escaped."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", _one_line(value))


def _one_line(value: Any) -> str:
    return "" if value is None else defuse(" ".join(str(value).split()))


_body_env = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    finalize=_markdown_escape,
    autoescape=False,
    keep_trailing_newline=True,
)
_subject_env = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, finalize=_one_line, autoescape=False
)
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


@dataclasses.dataclass(frozen=True)
class CompiledMail:
    subject: jinja2.Template
    body: jinja2.Template
    links: tuple[str, ...]  # the http(s) link targets written in the template, in order


def _check_variables(env: jinja2.Environment, source: str, base_line: int = 0) -> None:
    try:
        parsed = env.parse(source)
        undeclared = meta.find_undeclared_variables(parsed)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(
            base_line + (exc.lineno or 1), exc.message or "syntax error"
        ) from None
    unknown = sorted(undeclared - set(VARIABLES))
    if unknown:
        name = unknown[0]
        lines = source.splitlines()
        line = next((i + 1 for i, text in enumerate(lines) if name in text), 1)
        raise TemplateProblem(
            base_line + line, f"unknown variable {name!r}; use {', '.join(VARIABLES)}"
        )


def _links(source: str) -> tuple[str, ...]:
    found: list[str] = []
    for block in _markdown.parse(source):
        for token in block.children or []:
            line = (block.map[0] + 1) if block.map else 1
            if token.type == "image":
                raise TemplateProblem(
                    line, "images are not allowed: a remote image tells the sender a mail was read"
                )
            if token.type != "link_open":
                continue
            href = str(token.attrGet("href") or "")
            if "{" in href or "%7B" in href:
                raise TemplateProblem(
                    line, "a link target must be a literal URL, not an expression"
                )
            if href.startswith(_SCHEMES_UNTRACKED):
                continue
            if not re.match(r"^https?://[^/\s]+", href):
                raise TemplateProblem(line, f"link target {href!r} is not an http(s) URL")
            if href not in found:
                found.append(href)
    return tuple(found)


def compile_mail(subject: str, body: str) -> CompiledMail:
    """Compile and check a template; TemplateProblem names the line within ``body``
    (line 0 for the subject)."""
    try:
        _check_variables(_subject_env, subject)
    except TemplateProblem as exc:
        raise TemplateProblem(0, f"subject: {exc.message}") from None
    _check_variables(_body_env, body)
    links = _links(body)
    try:
        compiled = CompiledMail(
            _subject_env.from_string(subject), _body_env.from_string(body), links
        )
        # A sample render catches what parsing cannot (a filter that does not exist …).
        compiled.subject.render(SAMPLE)
        sample = compiled.body.render(SAMPLE)
    except jinja2.TemplateError as exc:
        raise TemplateProblem(getattr(exc, "lineno", None) or 1, str(exc)) from None
    # A link whose target comes out of an expression is not a literal URL.
    for block in _markdown.parse(sample):
        for token in block.children or []:
            href = str(token.attrGet("href") or "") if token.type == "link_open" else None
            if href is not None and href not in links and not href.startswith(_SCHEMES_UNTRACKED):
                line = (block.map[0] + 1) if block.map else 1
                raise TemplateProblem(line, "a link target must be a literal URL")
    return compiled


LinkMapper = Callable[[int, str], str]


@dataclasses.dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def render(compiled: CompiledMail, values: Mapping[str, str], link_url: LinkMapper) -> Rendered:
    """Render for one lead; ``link_url(index, target)`` gives each link's href."""
    context = {name: values.get(name, "") for name in VARIABLES}
    subject = compiled.subject.render(context).strip()
    tokens = _markdown.parse(compiled.body.render(context))
    for block in tokens:
        if block.children:
            block.children = _map_links(block.children, compiled.links, link_url)
    html = _markdown.renderer.render(tokens, _markdown.options, {})
    return Rendered(subject, html, _text(tokens))


def _map_links(children: list[Token], links: tuple[str, ...], link_url: LinkMapper) -> list[Token]:
    """Point each template link at ``link_url``; any other link becomes its plain label."""
    kept: list[Token] = []
    dropped = 0
    for token in children:
        if token.type == "link_open":
            href = str(token.attrGet("href") or "")
            if href in links:
                token.attrSet("href", link_url(links.index(href), href))
            elif not href.startswith(_SCHEMES_UNTRACKED):
                dropped += 1
                continue
        elif token.type == "link_close" and dropped:
            dropped -= 1
            continue
        kept.append(token)
    return kept


def _inline_text(children: list[Token]) -> str:
    parts: list[str] = []
    targets: list[tuple[str, int]] = []
    for token in children:
        if token.type in {"text", "code_inline"}:
            parts.append(token.content)
        elif token.type in {"softbreak", "hardbreak"}:
            parts.append("\n")
        elif token.type == "link_open":
            targets.append((str(token.attrGet("href") or ""), len(parts)))
        elif token.type == "link_close" and targets:
            href, start = targets.pop()
            label = "".join(parts[start:])
            if href and href not in (label, f"mailto:{label}"):
                parts.append(f" ({href})")
    return "".join(parts)


def _text(tokens: list[Token]) -> str:
    """A plain-text rendering: paragraphs, headings underlined, list markers, links as
    "label (URL)"."""
    blocks: list[tuple[str, int]] = []  # (text, list it belongs to or 0)
    lists: list[list[Any]] = []  # [ordered, next number]
    marker: str | None = None
    heading: str | None = None
    quote = 0
    list_count = 0
    for token in tokens:
        kind = token.type
        if kind in {"bullet_list_open", "ordered_list_open"}:
            list_count += 1
            lists.append([kind == "ordered_list_open", int(token.attrGet("start") or 1)])
        elif kind in {"bullet_list_close", "ordered_list_close"}:
            lists.pop()
        elif kind == "list_item_open" and lists:
            ordered, number = lists[-1]
            marker = f"{number}. " if ordered else "- "
            lists[-1][1] = number + 1
        elif kind == "heading_open":
            heading = token.tag
        elif kind == "heading_close":
            heading = None
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind in {"fence", "code_block"}:
            blocks.append((token.content.rstrip("\n"), 0))
        elif kind == "hr":
            blocks.append(("----", 0))
        elif kind == "inline":
            text = _inline_text(token.children or [])
            if heading is not None:
                text = f"{text}\n{('=' if heading == 'h1' else '-') * len(text)}"
            in_list = list_count if lists else 0
            if marker is not None:
                indent = "  " * (len(lists) - 1)
                text = indent + marker + text.replace("\n", "\n" + indent + " " * len(marker))
                marker = None
            if quote:
                text = "\n".join("> " * quote + line for line in text.split("\n"))
            blocks.append((text, in_list))
    out: list[str] = []
    for index, (text, in_list) in enumerate(blocks):
        if index and not (in_list and blocks[index - 1][1] == in_list):
            out.append("")
        out.append(text)
    return "\n".join(out) + "\n"
