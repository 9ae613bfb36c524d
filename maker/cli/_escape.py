"""Untrusted text (from a server, a model, or a trace) ready for a rich console.

`shown` spells out control characters (`maker._escape.visible`) and escapes
rich markup, so `[/nope]` or `[link=...]` in a reply is printed as typed,
never interpreted. Every view that prints such text goes through it; the
consoles it prints to have emoji codes off, so `:smile:` stays text too.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from maker._escape import visible


def shown(value: Any, *, lines: bool = False) -> str:
    """`value` as text that rich prints literally: no markup, no control characters."""
    return escape(visible(value if isinstance(value, str) else str(value), lines=lines))


def console() -> Console:
    """The stdout console every result (table) goes to, with emoji codes off (`:x:` is data, not an icon).

    The rule for every command: results on stdout (`maker trace show T | less` works);
    progress, notes, hints and errors on stderr.
    """
    return Console(emoji=False)


def err_console() -> Console:
    """The stderr console, for what is not a result: progress, notes, hints, errors."""
    return Console(stderr=True, emoji=False)


__all__ = ["console", "err_console", "shown"]
