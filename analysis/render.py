"""Render a report, built once as sections of blocks, to both Markdown and a self-contained HTML page.

A block is text, a banner (a warning shown at the top of its section), a table (a DataFrame of display
strings), a figure (a PNG path relative to the report folder, with an SVG beside it) or preformatted text.
The HTML needs no server: CSS is inline, figures are relative ``<img>`` paths, and it uses no JavaScript.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Block:
    kind: str                      # text | banner | table | figure | pre
    content: Any                   # str, or a DataFrame for tables
    caption: str | None = None


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)

    def text(self, content: str) -> "Section":
        self.blocks.append(Block("text", content))
        return self

    def banner(self, content: str) -> "Section":
        self.blocks.append(Block("banner", content))
        return self

    def table(self, frame: pd.DataFrame, caption: str | None = None) -> "Section":
        self.blocks.append(Block("table", frame, caption))
        return self

    def figure(self, png: str, caption: str) -> "Section":
        self.blocks.append(Block("figure", png, caption))
        return self

    def pre(self, content: str, caption: str | None = None) -> "Section":
        self.blocks.append(Block("pre", content, caption))
        return self


# ---------------------------------------------------------------------------------------------------- Markdown
def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_text(text: str) -> str:
    """Text inside Markdown emphasis: a literal '*' (the non-standard-weights mark) must not end it."""
    return text.replace("*", "\\*")


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(none)_"
    head = "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def to_markdown(title: str, banners: list[str], sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    out += [f"> **Warning:** {b}\n" for b in banners]
    out += ["Contents: " + " · ".join(f"[{s.title}](#{s.anchor})" for s in sections), ""]
    for s in sections:
        out += [f'<a id="{s.anchor}"></a>', f"## {s.title}", ""]
        for b in s.blocks:
            if b.kind == "text":
                out += [b.content, ""]
            elif b.kind == "banner":
                out += [f"> **Warning:** {b.content}", ""]
            elif b.kind == "table":
                out += ([f"*{_md_text(b.caption)}*", ""] if b.caption else []) + [markdown_table(b.content), ""]
            elif b.kind == "figure":
                svg = b.content[:-4] + ".svg" if b.content.endswith(".png") else b.content
                out += [f"![{b.caption}]({b.content})", "", f"*{_md_text(b.caption)}* ([SVG]({svg}))", ""]
            elif b.kind == "pre":
                out += ([f"*{_md_text(b.caption)}*", ""] if b.caption else []) + ["```", b.content.rstrip(), "```", ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------- HTML
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
main{max-width:1180px;margin:0 auto;padding:24px 28px 80px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:36px 0 10px;border-bottom:1px solid #d8dee4;
padding-bottom:4px}
nav{font-size:13px;margin:10px 0 18px}nav a{margin-right:12px;color:#0b5cad;text-decoration:none}
.banner{background:#fff4e5;border:1px solid #f0a030;border-left:6px solid #e07b00;padding:10px 14px;margin:12px 0;
border-radius:4px}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px;background:#fff;display:block;overflow-x:auto}
th,td{border:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#eef1f4;position:sticky;top:0}tr:nth-child(even) td{background:#f6f8fa}
caption{caption-side:top;text-align:left;font-style:italic;color:#57606a;padding:2px 0}
figure{margin:12px 0 22px}figure img{max-width:100%;height:auto;border:1px solid #d8dee4;background:#fff}
figcaption{font-size:13px;color:#57606a}pre{background:#f1f3f5;padding:10px;overflow-x:auto;font-size:12px}
.meta{color:#57606a;font-size:13px}
"""


def _html_table(frame: pd.DataFrame, caption: str | None) -> str:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    if frame.empty:
        return f"<p><em>{html.escape(caption or '')} (none)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_block(b: Block) -> str:
    if b.kind == "text":
        return f"<p>{html.escape(b.content)}</p>"
    if b.kind == "banner":
        return f'<div class="banner"><strong>Warning:</strong> {html.escape(b.content)}</div>'
    if b.kind == "table":
        return _html_table(b.content, b.caption)
    if b.kind == "figure":
        src = html.escape(b.content)
        svg = html.escape(b.content[:-4] + ".svg") if b.content.endswith(".png") else src
        return (f'<figure><a href="{svg}"><img src="{src}" alt="{html.escape(b.caption or "")}" loading="eager">'
                f'</a><figcaption>{html.escape(b.caption or "")} (<a href="{svg}">SVG</a>)</figcaption></figure>')
    if b.kind == "pre":
        cap = f"<p class=meta>{html.escape(b.caption)}</p>" if b.caption else ""
        return f"{cap}<pre>{html.escape(b.content)}</pre>"
    raise ValueError(f"unknown block kind {b.kind!r}")


def to_html(title: str, subtitle: str, banners: list[str], sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    top = "".join(f'<div class="banner"><strong>Warning:</strong> {html.escape(b)}</div>' for b in banners)
    body = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>'
                   + "".join(_html_block(b) for b in s.blocks) + "</section>" for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
            f'<link rel="icon" href="data:,"><style>{_CSS}</style></head><body><main><h1>{html.escape(title)}</h1>'
            f'<p class="meta">{html.escape(subtitle)}</p>{top}<nav>{nav}</nav>{body}</main></body></html>\n')
