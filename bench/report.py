"""Tables and verdicts from the samples: medians over the rounds, their spread, and ratios.

A ratio is taken between two contenders *within one round* (the same minute, the same machine
load) and only then is the median taken over the rounds: ratios across runs don't count.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.load import Sample

Rounds = dict[str, list[Sample]]  # contender -> one sample per round, in round order
Value = Callable[[Rounds, str, int], float | None]  # (rounds, contender, round) -> value


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def per_round(rounds: Rounds, name: str, value: Value) -> list[float | None]:
    return [value(rounds, name, i) for i in range(len(rounds[name]))]


def spread_percent(values: Sequence[float | None]) -> float | None:
    """Half the range, as a percentage of the median: how far apart the rounds were."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    middle = median(present)
    if len(present) < 2 or not middle:
        return None
    return (max(present) - min(present)) / 2 / middle * 100


def field_of(attribute: str) -> Value:
    def value(rounds: Rounds, name: str, i: int) -> float | None:
        sample = rounds[name][i]
        result = getattr(sample, attribute, None)
        return sample.extra.get(attribute) if result is None else result

    return value


def _against(value: Value, reference: str, combine: Callable[[float, float], float]) -> Value:
    """``combine(mine, the reference's)`` of ``value``, in the same round."""

    def of(rounds: Rounds, name: str, i: int) -> float | None:
        if reference not in rounds or name == reference:
            return None
        mine, theirs = value(rounds, name, i), value(rounds, reference, i)
        return None if mine is None or theirs is None else combine(mine, theirs)

    return of


def ratio(value: Value, reference: str) -> Value:
    """``value`` of a contender over the reference's, in the same round."""
    return _against(value, reference, lambda mine, theirs: mine / theirs if theirs else math.nan)


def added(value: Value, reference: str) -> Value:
    """``value`` of a contender minus the reference's, in the same round."""
    return _against(value, reference, lambda mine, theirs: mine - theirs)


@dataclass(frozen=True)
class Column:
    header: str
    value: Value
    digits: int = 0
    spread: bool = False

    def cell(self, rounds: Rounds, name: str) -> str:
        values = per_round(rounds, name, self.value)
        middle = median(values)
        if middle is None:
            return "—"
        text = f"{middle:,.{self.digits}f}"
        spread = spread_percent(values) if self.spread else None
        return text if spread is None else f"{text} ±{spread:.0f}%"


@dataclass(frozen=True)
class Bar:
    """A target from the performance issue: ``value`` (a median) compared with ``limit``."""

    text: str
    value: Callable[[Rounds], float | None]
    limit: float
    at_least: bool  # True: the value must be >= limit; False: <= limit
    unit: str = ""

    def verdict(self, rounds: Rounds) -> str:
        value = self.value(rounds)
        if value is None:
            return f"- {self.text}: not measured"
        reached = value >= self.limit if self.at_least else value <= self.limit
        word = "**reached**" if reached else "**not reached**"
        return f"- {self.text}: {value:.3g}{self.unit} → {word}"


def median_of(value: Value, name: str) -> Callable[[Rounds], float | None]:
    def of(rounds: Rounds) -> float | None:
        return median(per_round(rounds, name, value)) if name in rounds else None

    return of


def worst_of(attribute: str, name: str) -> Callable[[Rounds], float | None]:
    """The largest of ``name``'s ``extra[attribute]`` over the rounds (a peak, a worst case)."""

    def of(rounds: Rounds) -> float | None:
        values = [s.extra[attribute] for s in rounds.get(name, []) if attribute in s.extra]
        return max(values) if values else None

    return of


@dataclass
class Result:
    """One scenario's table, or the reason it did not run."""

    title: str
    rounds: Rounds = field(default_factory=dict)
    columns: Sequence[Column] = ()
    bars: Sequence[Bar] = ()
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None
    preformatted: str | None = None  # shown instead of a table (the profile)

    def verdicts(self) -> list[str]:
        return [bar.verdict(self.rounds) for bar in self.bars] if not self.unavailable else []

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.unavailable:
            # "not available in this build", or why the scenario failed
            return "\n".join([*lines, f"Not run: {self.unavailable}.", ""])
        if self.preformatted is not None:
            return "\n".join([*lines, self.preformatted, *(f"- {n}" for n in self.notes), ""])
        lines.append("| contender | " + " | ".join(c.header for c in self.columns) + " |")
        lines.append("|---|" + "---:|" * len(self.columns))
        for name in self.rounds:
            cells = " | ".join(c.cell(self.rounds, name) for c in self.columns)
            lines.append(f"| {name} | {cells} |")
        lines.append("")
        lines += self.verdicts()
        lines += [f"- {note}" for note in self.notes]
        return "\n".join([*lines, ""])
