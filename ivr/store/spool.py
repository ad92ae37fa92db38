"""Where records wait while the database is away: JSON lines on disk, written when it returns.

Each operation is one line, appended and fsynced before the writer moves on, so a crash
while the database is down loses nothing already spooled. Files are replayed oldest first;
a file is deleted only after all its operations are committed. Replaying twice is harmless:
every operation is idempotent (INSERT ... ON CONFLICT). A line cut short by a crash is
skipped with a warning. Operations the database refuses for good (not an outage) go to
`rejected.jsonl` with the error, for a person to look at: set aside, never dropped.
"""

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("ivr.store")


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._file = None
        self._path: Path | None = None
        self.count = 0        # operations spooled and not yet replayed (this process)
        self.pending = bool(self.files())   # anything on disk to replay (also from an earlier run)

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("spool-*.jsonl"))

    def append(self, ops: list[dict]) -> None:
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._path = self.folder / f"spool-{time.time_ns():020d}-{os.getpid()}.jsonl"
            self._file = open(self._path, "a", encoding="utf-8")   # noqa: SIM115 - kept open while spooling
        for op in ops:
            self._file.write(json.dumps(op, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.count += len(ops)
        self.pending = True

    def seal(self) -> None:
        """Close the file being appended to, so a replay can take it whole."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, path: Path) -> Iterator[dict]:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    log.warning("spool %s line %d is cut short (a crash while writing it): skipped", path, number)

    def done(self, path: Path, count: int) -> None:
        path.unlink(missing_ok=True)
        self.count = max(0, self.count - count)

    def reject(self, op: dict, error: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "rejected.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"error": error, "op": op}, ensure_ascii=False, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
