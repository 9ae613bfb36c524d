"""The running count of votes at one step."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Tally:
    """Votes per candidate, in the order candidates first appeared.

    Insertion order matters: it breaks ties deterministically (the candidate seen
    first leads), so a replay of the same samples always reaches the same verdict.
    """

    counts: dict[str, int] = field(default_factory=dict)
    flagged: int = 0

    @property
    def votes(self) -> int:
        return sum(self.counts.values())

    def add(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def leader(self) -> tuple[str | None, int, int]:
        """Return (leading key, its votes, votes of the runner-up)."""
        best: str | None = None
        top = second = 0
        for key, n in self.counts.items():
            if n > top:
                best, top, second = key, n, top
            elif n > second:
                second = n
        return best, top, second
