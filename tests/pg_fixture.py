"""A real PostgreSQL server for the tests, from Debian's `postgresql` package (scripts/setup.sh).

`initdb` + `pg_ctl start` in a temporary folder, listening on 127.0.0.1 at a free port
(no Unix socket outside that folder), as the `postgres` user when the tests run as root
(PostgreSQL refuses to run as root). Started once per session on first use, stopped at the
end; `stop()`/`start()` let a test take it away mid-run. fsync is off: test data only.

    @pytest.fixture(scope="session")
    def pg():
        yield from pg_server()

    def test_x(pg): url = pg.new_database()
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path, fsync: bool = False) -> None:
        self.bin = bin_dir
        self.fsync = fsync          # off for tests; on for benchmarks (scripts/bench_store.py)
        self.root = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.user = "ivr"
        self._as: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout_s: float = 60) -> None:
        proc = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stderr.strip()}\n{log}")

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        self.start()

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} {'' if self.fsync else '-F '}-c max_connections=40"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop now (fast shutdown: open connections are cut, like a server going away)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def cleanup(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def pg_server():
    """The body of a session fixture: `yield from pg_server()`."""
    found = bin_dir()
    if found is None:
        pytest.skip("PostgreSQL server binaries not installed (scripts/setup.sh installs Debian's postgresql)")
    pytest.importorskip("psycopg")
    server = PostgresServer(found)
    try:
        server.init()
        yield server
    finally:
        server.cleanup()
