"""What checking a store or a history finds, whatever its backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class Problem:
    """A damaged region of a log: ``length`` bytes at ``offset``, and why they are no record.

    One damaged line, or consecutive ones taken together; ``line`` is the
    number of the first (None when the lines before it were not counted).
    """

    offset: int
    length: int
    line: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: where it is and what it is."""

    path: Path
    message: str
    offset: int | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
        if self.offset is not None:
            where += f" (byte {self.offset})"
        return f"{where}: {self.message}"


@dataclass(slots=True)
class CheckReport:
    """What verify found, or what repair did (or would do, with ``dry_run``)."""

    findings: list[Finding] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    records: int = 0
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def merge(self, other: CheckReport) -> None:
        self.findings.extend(other.findings)
        self.actions.extend(other.actions)
        self.records += other.records
        self.files += other.files


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``SnapshotStore.info()`` says about a store: counts, seqs, and its backend's facts.

    ``histories`` maps each history's name to its record count; ``details``
    holds what only the backend knows (a directory's files and sizes, which
    snapshots its index file answers for), as text for people.
    """

    location: str
    snapshots: int
    seq_range: tuple[int, int] | None
    baselines: int
    histories: dict[str, int]
    details: dict[str, str]
