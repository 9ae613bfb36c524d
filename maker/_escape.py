"""Text a server or a model sent, made safe to show on a terminal.

Anything that came over the wire (a server's error message, a model's reply,
a `finish_reason`) may hold terminal escape sequences (`ESC c` resets the
screen, OSC 8 hides links), carriage returns that overwrite what is shown,
or bidirectional overrides that reorder it. `visible` spells every such
character out (`\\x1b`, `\\u202e`), so what is shown is what was sent.
Rich markup is a second layer: `maker.cli._escape.shown` escapes that too.
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL; zero-width, bidi and other invisible format characters;
# line and paragraph separators; lone surrogates and the interlinear annotation marks.
_UNSAFE_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
_UNSAFE_ONE_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def _spell(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, lines: bool = False) -> str:
    """`text` with every control or invisible character spelled out as an escape.

    lines: keep newlines and tabs (a model's multi-line reply); otherwise
        they are spelled out too, so the result is one line.
    """
    return (_UNSAFE_LINES if lines else _UNSAFE_ONE_LINE).sub(_spell, text)


__all__ = ["visible"]
