"""The HTML of a report: one self-contained page (styles and images inline, nothing fetched).

A page is a list of sections; a section holds paragraphs, tables (:func:`table`), charts
(:func:`chart`: inline SVG from :mod:`onebit.report.svg`) and PNG plots a run already wrote
(:func:`png`: an inline ``data:image/png;base64`` image).
Every value is escaped with :func:`html.escape`; no script runs, no file or address is
referenced, so the page opens from a mail attachment or a CI artefact as it is. The style
sheet suits a laptop screen (a centred column, tables that scroll sideways when wide) and
paper (``@media print``: no scrolling boxes, no page break inside a figure or a table row).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Page", "Percent", "Section", "chart", "fmt", "png", "table"]

STYLE = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d5d9e0; --head: #f1f3f6; --bad: #a3261b; --good: #1f6f3a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       max-width: 1180px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; background: #fff; }
h1 { font-size: 1.6rem; margin: 0.2rem 0 0.3rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.2rem 0 0.4rem; }
p, li { max-width: 62rem; }
.muted { color: var(--muted); }
.note { border-left: 4px solid #d9a400; background: #fff8e1; padding: 0.5rem 0.8rem; margin: 0.8rem 0; }
.missing { border-left: 4px solid var(--bad); background: #fdecea; padding: 0.5rem 0.8rem; margin: 0.8rem 0; }
.scroll { overflow-x: auto; }
.tall { max-height: 22rem; overflow-y: auto; }
table { border-collapse: collapse; margin: 0.4rem 0 0.8rem; font-size: 0.88rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 0.22rem 0.5rem; vertical-align: top; }
th { background: var(--head); text-align: left; position: sticky; top: 0; }
td.num { text-align: right; white-space: nowrap; }
p.caption { color: var(--muted); font-size: 0.88rem; margin: 0.8rem 0 0.1rem; }
figure { margin: 0.6rem 0 1rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.charts { display: flex; flex-wrap: wrap; gap: 0.8rem; align-items: flex-start; }
.charts svg { border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.88rem; }
.good { color: var(--good); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
nav ol { columns: 2; font-size: 0.92rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; }
  .scroll, .tall { overflow: visible; max-height: none; }
  th { position: static; }
  h2 { break-after: avoid; }
  figure, tr { break-inside: avoid; }
}
"""


class Percent(float):
    """A fraction shown as a percentage with two decimals (``0.975`` → ``97.50 %``)."""


def fmt(value: Any) -> str:
    """A cell's text: integers with thousands separators, floats to 4 significant digits,
    :class:`Percent` as a percentage."""
    if value is None:
        return "–"
    if isinstance(value, Percent):
        return "nan" if value != value else f"{100 * value:.2f} %"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)) and not value:
        return "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return str(value)


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(columns: list[str], rows: list[list[Any]], *, caption: str = "", css_id: str = "",
          tall: bool = False, raw: bool = False, align: bool = True) -> str:
    """An HTML table; numbers right-aligned unless ``align=False`` (a key–value list).
    ``raw=True``: cells are trusted HTML (already escaped). The caption is a line above it."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for v in row:
            text = v if raw and isinstance(v, str) else html.escape(fmt(v))
            cells.append(f'<td class="num">{text}</td>' if align and _numeric(v) else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{html.escape(css_id)}"' if css_id else ""
    cap = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
    wrap = "scroll tall" if tall else "scroll"
    return (f'{cap}<div class="{wrap}"><table{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def chart(svgs: str | list[str], caption: str = "") -> str:
    """One or more inline SVG charts (see :mod:`onebit.report.svg`) side by side, with a caption."""
    parts = [svgs] if isinstance(svgs, str) else svgs
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><div class="charts">{"".join(parts)}</div>{cap}</figure>'


def png(data: bytes, caption: str = "", alt: str = "") -> str:
    """PNG bytes (a plot a run already wrote) as an inline image."""
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(alt or caption or "plot")}" src="{uri}">{cap}</figure>'


@dataclass
class Section:
    """One ``<section>``: a heading and its HTML parts, in order."""

    title: str
    parts: list[str] = field(default_factory=list)
    ident: str = ""

    def text(self, line: str, css: str = "") -> Section:
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{html.escape(line)}</p>")
        return self

    def add(self, fragment: str) -> Section:
        self.parts.append(fragment)
        return self

    @property
    def anchor(self) -> str:
        return self.ident or _slug(self.title)

    def html(self) -> str:
        ident = self.anchor
        return f'<section id="{ident}"><h2>{html.escape(self.title)}</h2>{"".join(self.parts)}</section>'


@dataclass
class Page:
    """A report page: title, lines under it, notes about missing parts, and sections."""

    title: str
    subtitle: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str, ident: str = "") -> Section:
        s = Section(title, ident=ident)
        self.sections.append(s)
        return s

    def html(self) -> str:
        sub = "".join(f'<p class="muted">{html.escape(line)}</p>' for line in self.subtitle)
        missing = ""
        if self.missing:
            items = "".join(f"<li>{html.escape(m)}</li>" for m in self.missing)
            missing = f'<div class="missing" id="missing"><strong>Partial report.</strong> Missing:<ul>{items}</ul></div>'
        toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in self.sections)
        body = "".join(s.html() for s in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{html.escape(self.title)}</h1>{sub}{missing}</header>"
            f"<nav><ol>{toc}</ol></nav>{body}</body></html>\n"
        )


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
