"""Render a :class:`~specoracle.reports.document.Report` to Markdown, self-contained HTML and JSON.

``index.md`` links the PNG files next to it; ``index.html`` embeds the same PNGs as base64 data
URIs and inlines its CSS, so the single file can be attached anywhere; ``results.json`` holds the
configuration, provenance and every number (non-finite numbers written as ``null``).
"""
from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from .document import Report, Section, Table

__all__ = ["to_markdown", "to_html", "write"]

_BADGE = {"ok": "#1a7f37", "fail": "#cf222e", "partial": "#9a6700", "missing": "#6e7781", "error": "#cf222e"}


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _md_table(t: Table) -> str:
    head = "| " + " | ".join(t.columns) + " |"
    sep = "|" + "|".join("---" for _ in t.columns) + "|"
    body = ["| " + " | ".join(_cell(v).replace("|", "\\|").replace("\n", " ") for v in r) + " |" for r in t.rows]
    out = [head, sep, *body]
    if t.caption:
        out = [f"*{t.caption}*", "", *out]
    return "\n".join(out)


def _header_lines(meta: dict) -> list[tuple[str, str]]:
    cfg = meta.get("config", {})
    vers = meta.get("versions", {})
    return [
        ("command", meta.get("command", "")),
        ("preset / seed / device", f"{cfg.get('preset')} / {cfg.get('seed')} / {cfg.get('device')}"),
        ("git commit", meta.get("git_commit", "unknown")),
        ("versions", ", ".join(f"{k} {v}" for k, v in vers.items())),
        ("registered verifiers", ", ".join(meta.get("verifiers", []))),
        ("torch twins", ", ".join(meta.get("twins", [])) or "none"),
        ("generated", f"{meta.get('generated', '')} in {meta.get('seconds', 0):.1f} s wall, "
                      f"{meta.get('cpu_seconds', 0):.1f} s CPU, on {meta.get('cpus', '?')} CPU cores"),
    ]


def to_markdown(report: Report) -> str:
    """The Markdown report (figures referenced as sibling PNG files)."""
    lines = ["# specoracle report", ""]
    for k, v in _header_lines(report.meta):
        lines.append(f"- **{k}**: {v}")
    lines += ["", "| section | status | wall s | CPU s |", "|---|---|---|---|"]
    for s in report.sections:
        lines.append(f"| {s.number}. {s.title} | {s.status} | {s.seconds:.1f} | {s.cpu_seconds:.1f} |")
    for s in report.sections:
        lines += ["", f"## {s.number}. {s.title}", "", f"**Status: {s.status}.** {s.summary}", ""]
        for note in s.notes:
            lines += ["> " + note.replace("\n", "\n> "), ""]
        for f in s.figures:
            lines += [f"![{f.caption}]({f.filename})", "", f"*{f.caption}*", ""]
        for t in s.tables:
            if t.collapsed:
                lines += [f"<details><summary>{t.caption or 'details'} ({len(t.rows)} rows)</summary>", "",
                          _md_table(Table(t.columns, t.rows)), "", "</details>", ""]
            else:
                lines += [_md_table(t), ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#1f2328;padding:0 1em;line-height:1.45}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfbfc}
.badge{display:inline-block;color:#fff;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600}
.note{background:#fff8c5;border-left:4px solid #d4a72c;padding:.4em .8em;white-space:pre-wrap;font-size:13px}
.caption{color:#57606a;font-style:italic;font-size:13px}
details{margin:.6em 0}summary{cursor:pointer;color:#0969da}
img{max-width:100%;border:1px solid #d0d7de;margin:.5em 0}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:14px}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
td.bad{color:#cf222e;font-weight:600}td.good{color:#1a7f37}
"""

_BAD_WORDS = {"NOT lossless", "FAIL", "NO", "MISMATCH"}
_GOOD_WORDS = {"pass", "yes", "ok"}


def _html_table(t: Table) -> str:
    e = html.escape
    out = ["<table>"]
    if t.caption:
        out.append(f"<caption class='caption'>{e(t.caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{e(c)}</th>" for c in t.columns) + "</tr>")
    for r in t.rows:
        cells = []
        for v in r:
            s = _cell(v)
            cls = " class='bad'" if s in _BAD_WORDS else " class='good'" if s in _GOOD_WORDS else ""
            cells.append(f"<td{cls}>{e(s)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _badge(status: str) -> str:
    return f"<span class='badge' style='background:{_BADGE.get(status, '#6e7781')}'>{html.escape(status)}</span>"


def to_html(report: Report, figure_dir: str | os.PathLike) -> str:
    """A single self-contained HTML page (inline CSS, PNGs embedded as data URIs)."""
    e = html.escape
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<title>specoracle report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>specoracle report</h1>", "<dl class='meta'>"]
    for k, v in _header_lines(report.meta):
        parts.append(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>")
    parts.append("</dl><table><tr><th>section</th><th>status</th><th>wall s</th><th>CPU s</th></tr>")
    for s in report.sections:
        parts.append(f"<tr><td><a href='#{s.key}'>{s.number}. {e(s.title)}</a></td><td>{_badge(s.status)}</td>"
                     f"<td>{s.seconds:.1f}</td><td>{s.cpu_seconds:.1f}</td></tr>")
    parts.append("</table>")
    for s in report.sections:
        parts.append(_html_section(s, Path(figure_dir)))
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_section(s: Section, figdir: Path) -> str:
    e = html.escape
    out = [f"<h2 id='{s.key}'>{s.number}. {e(s.title)} {_badge(s.status)}</h2>", f"<p>{e(s.summary)}</p>"]
    for note in s.notes:
        out.append(f"<div class='note'>{e(note)}</div>")
    for f in s.figures:
        path = figdir / f.filename
        if path.exists():
            b64 = base64.b64encode(path.read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{e(f.caption)}' src='data:image/png;base64,{b64}'>"
                       f"<figcaption class='caption'>{e(f.caption)}</figcaption></figure>")
    for t in s.tables:
        if t.collapsed:
            out.append(f"<details><summary>{e(t.caption or 'details')} ({len(t.rows)} rows)</summary>"
                       f"{_html_table(Table(t.columns, t.rows))}</details>")
        else:
            out.append(_html_table(t))
    return "\n".join(out)


def write(report: Report, out: str | os.PathLike) -> dict[str, Path]:
    """Write figures, ``index.md``, ``index.html`` and ``results.json`` under ``out``; return the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg", force=True)
    paths: dict[str, Path] = {}
    for s in report.sections:
        for f in s.figures:
            p = out / f.filename
            f.draw(str(p))
            paths[f.filename] = p
    paths["index.md"] = out / "index.md"
    paths["index.md"].write_text(to_markdown(report), encoding="utf-8")
    paths["index.html"] = out / "index.html"
    paths["index.html"].write_text(to_html(report, out), encoding="utf-8")
    paths["results.json"] = out / "results.json"
    paths["results.json"].write_text(json.dumps(report.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
    return paths
