"""`python -m maker`: the same command as `maker`."""

from __future__ import annotations

from maker.cli import main

main()
