"""Open the HTML report in headless Chromium and save a screenshot (PNG).

Usage::

    python benchmarks/screenshot_report.py [--report specoracle-report] [--out shot.png]
        [--width 1400] [--height 4000] [--generate-quick]

``--generate-quick`` first writes a quick report into ``--report`` with ``specoracle report
--quick``. The script installs nothing: it needs the Debian package ``chromium``
(``/usr/bin/chromium``) and exits with status 2 naming it when it is missing. Chromium runs with
no network, no GPU, no sandbox (root in containers) and a throw-away profile; since the HTML
report is self-contained (inline CSS, PNGs as data URIs) nothing else has to load.
"""
from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["find_chromium", "screenshot", "png_size", "main"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-dev-shm-usage",
)


def find_chromium() -> str | None:
    """Path of the Chromium binary (Debian: /usr/bin/chromium), or None."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name) if not name.startswith("/") else (name if Path(name).exists() else None)
        if path:
            return path
    return None


def png_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG file's IHDR chunk."""
    head = Path(path).read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


def screenshot(html: str | Path, png: str | Path, *, width: int = 1400, height: int = 4000,
               chromium: str | None = None, timeout: float = 120.0) -> Path:
    """Render ``html`` in headless Chromium at ``width x height`` CSS pixels and save ``png``."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium not found: install the Debian package `chromium` (/usr/bin/chromium)")
    html, png = Path(html).resolve(), Path(png).resolve()
    if not html.exists():
        raise FileNotFoundError(f"no HTML report at {html}")
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    with tempfile.TemporaryDirectory(prefix="specoracle-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png}", html.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={"HOME": profile, "PATH": "/usr/bin:/bin"})
    if not png.exists():
        raise RuntimeError(f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return png


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", default="specoracle-report", help="report directory holding index.html")
    ap.add_argument("--out", default=None, help="PNG path (default: REPORT/screenshot.png)")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--generate-quick", action="store_true", help="first run `specoracle report --quick`")
    args = ap.parse_args(argv)
    report = Path(args.report)
    if args.generate_quick:
        subprocess.run([sys.executable, "-m", "specoracle", "report", "--quick", "--no-progress",
                        "--out", str(report)], check=False)
    if find_chromium() is None:
        print("screenshot_report: Chromium not found; install the Debian package `chromium`", file=sys.stderr)
        return 2
    out = screenshot(report / "index.html", Path(args.out) if args.out else report / "screenshot.png",
                     width=args.width, height=args.height)
    w, h = png_size(out)
    print(f"wrote {out} ({w}x{h} px, {out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
