"""Pure arithmetic of the benchmark: percentiles, per-side summaries, ratios, targets and the table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (the smallest value with at least pct % of the values at or below it)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Sample:
    """Requests of one path on one side, over all its rounds. Latencies in seconds."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0  # wall time of the timed rounds, summed
    cpu_seconds: float = 0.0  # the side's server processes (utime + stime), summed over the rounds
    errors: int = 0  # answers that were not the expected status
    server_errors: int = 0  # 5xx and transport failures
    rounds_rps: list[float] = field(default_factory=list)

    def add_round(
        self, latencies: Sequence[float], elapsed: float, cpu_seconds: float, errors: int, server_errors: int
    ):
        self.latencies.extend(latencies)
        self.elapsed += elapsed
        self.cpu_seconds += cpu_seconds
        self.errors += errors
        self.server_errors += server_errors
        self.rounds_rps.append(len(latencies) / elapsed if elapsed > 0 else math.nan)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else math.nan

    def ms(self, pct: float) -> float:
        return percentile(self.latencies, pct) * 1000

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds * 1000 / self.count if self.count else math.nan


def ratio(numerator: float, denominator: float) -> float:
    if not denominator or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: float
    passed: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


def at_least(name: str, measured: float, goal: float, unit: str = "x") -> Target:
    return Target(name, f"≥ {goal:.2f}{unit}", measured, not math.isnan(measured) and measured >= goal)


def at_most(name: str, measured: float, goal: float, unit: str = " ms") -> Target:
    return Target(name, f"≤ {goal:g}{unit}", measured, not math.isnan(measured) and measured <= goal)


def fmt(value: float, digits: int = 1) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
