"""`maker analyze TRACE --html report.html`: the analysis as one self-contained page to share.

The page holds the same tables as the terminal (rendered by rich, so the
numbers cannot drift from what `maker analyze` prints) and every figure,
inlined as a PNG data URI: no scripts, no external files, nothing fetched,
so it opens anywhere and can be attached to an issue or a mail as it is.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from maker._version import __version__
from maker.analysis import Analysis, write_plots
from maker.errors import ConfigError

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1b1b1b; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.1rem; margin-top: 2rem; }}
pre {{ font-family: ui-monospace, monospace; font-size: 0.8rem; line-height: 1.25; overflow-x: auto; }}
figure {{ margin: 1.5rem 0; }} img {{ max-width: 100%; height: auto; border: 1px solid #ddd; }}
figcaption, footer {{ color: #555; font-size: 0.85rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{subtitle}</p>
<h2>Tables</h2>
{tables}
<h2>Figures</h2>
{figures}
<footer>maker {version}, {created}. Self-contained: figures are inlined; the page runs no scripts.</footer>
</body>
</html>
"""


def write_report(analysis: Analysis, tables: Iterable[Any], path: Path, *, source: Path) -> Path:
    """Write the page; figures need the plots extra (matplotlib), as `--plots` does."""
    console = Console(record=True, width=120, file=io.StringIO(), color_system="truecolor")
    for table in tables:
        console.print(table)
    body = console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")
    with tempfile.TemporaryDirectory(prefix="maker-report-") as scratch:
        figures = "\n".join(_figure(p) for p in write_plots(analysis, scratch))
    page = _PAGE.format(
        title=html.escape(f"maker analysis of {source.name}"),
        subtitle=html.escape(str(source)),
        tables=body,
        figures=figures or "<p>No figures: the trace has no data for them.</p>",
        version=html.escape(__version__),
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write report {path}: {exc.strerror or exc}") from None
    return path


def _figure(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    name = html.escape(png.stem.replace("_", " "))
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'
