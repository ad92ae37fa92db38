"""What the benchmark scripts share: a description of the machine the figures come from, a PostgreSQL
to measure against, and how results are printed and saved."""

import contextlib
import json
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path


def machine_info() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": round(mem_kb / 1024 ** 2, 1),
            "python": platform.python_version()}


@contextlib.contextmanager
def postgres_url(given: str | None, *, fsync: bool = True) -> Iterator[str]:
    """`given` when a PostgreSQL URL was passed (--pg), else a temporary server's new database,
    removed on exit (Debian's postgresql binaries, as the tests' fixture finds them)."""
    if given:
        yield given
        return
    from tests.pg_fixture import PostgresServer, bin_dir

    found = bin_dir()
    if found is None:
        sys.exit("no PostgreSQL server binaries: install Debian's postgresql (scripts/setup.sh) or give --pg URL")
    server = PostgresServer(found, fsync=fsync)
    server.init()
    try:
        yield server.new_database()
    finally:
        server.cleanup()


def emit(results: dict, json_path: Path | None) -> None:
    """Print the results, and write them to `json_path` when one was given (--json)."""
    text = json.dumps(results, indent=2)
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
