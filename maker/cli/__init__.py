"""The command line: a thin layer over the library (see `_app.py`)."""

from __future__ import annotations

import sys

from maker.cli._app import build_parser
from maker.cli._app import main as _main

__all__ = ["build_parser", "main"]


def main() -> None:
    sys.exit(_main())
