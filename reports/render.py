"""Render a :class:`~specoracle.reports.document.Report` to Markdown, self-contained HTML and JSON.

``index.md`` links the PNG files next to it; ``index.html`` embeds the same PNGs as base64 data
URIs and inlines its CSS, so the single file can be attached anywhere; ``results.json`` holds the
configuration, provenance, every number (non-finite numbers written as ``null``) and the list of
files written. :func:`write` moves finished files into place from a temporary directory;
:func:`lock` keeps two reports out of one directory; :func:`check_output` checks the directory
before any work.
"""
from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from specoracle.errors import InvalidArgument, SpecoracleError

from .document import Report, Section, Table

__all__ = ["to_markdown", "to_html", "write", "check_output", "lock", "LOCK_NAME"]

_BADGE = {"ok": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700", "error": "#cf222e"}


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


# --- files --------------------------------------------------------------------------------------
LOCK_NAME = ".specoracle-report.lock"
"""Lock file that guards a report directory against two reports writing into it at once."""

_MANAGED = (".png", ".md", ".html", ".json")  # suffixes of the files a report writes (and may remove)


def check_output(out: str | os.PathLike) -> Path:
    """The report directory ``out``, checked before any work: an existing directory, or a new one
    under a writable directory (InvalidArgument otherwise, naming the path and the rule)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidArgument(f"output {str(out)!r} exists and is not a directory; give a directory (new, or one "
                              f"holding an earlier report)")
    existing = out if out.exists() else next(p for p in out.absolute().parents if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidArgument(f"output {str(out)!r}: {str(existing)!r} is not a writable directory")
    return out


def _made(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"output {str(out)!r} cannot be created ({exc.strerror}); give a writable directory") from None
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def lock(out: str | os.PathLike):
    """Hold the lock file ``out/.specoracle-report.lock`` (holding this process id) for the
    duration; a second holder gets a SpecoracleError naming the process. A lock whose process no
    longer exists is taken over."""
    out = _made(check_output(out))
    path = out / LOCK_NAME
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if not text.isdigit() or _alive(int(text)):
                raise SpecoracleError(
                    f"another report is writing to {str(out)!r} (lock file {str(path)!r}, process {text or '?'}); "
                    f"wait for it to finish, or remove the lock file if that process is gone") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
        break
    try:
        yield out
    finally:
        path.unlink(missing_ok=True)


def _previous_files(out: Path) -> list[str]:
    """The files the previous report in ``out`` wrote (its ``results.json`` manifest)."""
    try:
        files = json.loads((out / "results.json").read_text(encoding="utf-8"))["meta"]["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [f for f in files if isinstance(f, str) and Path(f).name == f and not f.startswith(".")
            and f.endswith(_MANAGED)]


def write(report: Report, out: str | os.PathLike) -> dict[str, Path]:
    """Write figures, ``index.md``, ``index.html`` and ``results.json`` under ``out``; return the paths.

    Everything is first written to a temporary directory inside ``out`` and then moved into place
    file by file (``results.json`` last), so an interrupted run never leaves a truncated file; the
    files of the previous report that this one does not write (an ``--only`` rerun's other
    sections) are removed, other files are left alone. ``results.json`` lists the files written
    (``meta.files``).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    out = _made(check_output(out))
    previous = _previous_files(out)
    tmp = Path(tempfile.mkdtemp(prefix=".specoracle-tmp-", dir=out))
    try:
        names = []
        for s in report.sections:
            for f in s.figures:
                f.draw(str(tmp / f.filename))
                names.append(f.filename)
        names += ["index.md", "index.html", "results.json"]
        (tmp / "index.md").write_text(to_markdown(report), encoding="utf-8")
        (tmp / "index.html").write_text(to_html(report, tmp), encoding="utf-8")
        data = report.to_dict()
        data["meta"]["files"] = names
        (tmp / "results.json").write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
        for name in names:
            os.replace(tmp / name, out / name)
        for name in set(previous) - set(names):
            (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: out / name for name in names}
