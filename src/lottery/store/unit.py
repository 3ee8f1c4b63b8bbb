"""A training unit: one (level, branch, seed) of a run, and its place in the run directory."""

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Unit:
    level: int
    branch: str
    seed: int

    @property
    def key(self) -> str:
        return f"level_{self.level:02d}/{self.branch}/seed_{self.seed}"
