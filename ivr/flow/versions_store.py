"""Where published flow versions live: the `VersionStore` interface and its on-disk implementation.

A store numbers versions, keeps their files unchanged forever, and keeps per flow a small
state (aliases, their history, canaries) changed only through `update_state`. A store for
several nodes (PostgreSQL, versions_pg.py) implements the same methods; `flow_path` then
materialises a version's files into a local cache folder, since flows load from files.
`open_version_store` picks one from the config.
"""

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ivr.errors import UserError

MANIFEST = "manifest.json"
STATE = "state.json"
FILES = "files"


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    version: int
    entry: str                      # the flow file, relative to the version's files
    hash: str                       # SHA-256 over the files (path and content), 64 hex digits
    author: str = ""
    created: str = ""               # ISO 8601 UTC
    message: str = ""
    files: dict[str, str] = field(default_factory=dict)   # relative path -> SHA-256 of its content

    @property
    def label(self) -> str:
        return f"v{self.version}"


def file_hash(contents: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(contents):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(contents[rel]).digest())
    return digest.hexdigest()


def default_author() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return ""


class VersionStore:
    """The interface (see the module doc). `where` names the store in messages."""

    where: str = ""

    def names(self) -> list[str]: raise NotImplementedError
    def versions(self, name: str) -> list[Manifest]: raise NotImplementedError
    def manifest(self, name: str, version: int) -> Manifest: raise NotImplementedError
    def add_version(self, name: str, contents: dict[str, bytes], entry: str, author: str,
                    message: str) -> Manifest: raise NotImplementedError
    def read_file(self, name: str, version: int, rel: str) -> bytes: raise NotImplementedError
    def flow_path(self, name: str, version: int) -> Path: raise NotImplementedError
    def state(self, name: str) -> dict: raise NotImplementedError
    def update_state(self, name: str, change: Callable[[dict], None]) -> dict: raise NotImplementedError

    def revision(self, name: str) -> object | None:
        """A token that changes whenever the flow's state or versions change, so a poller can skip
        re-reading an unchanged flow; None: unknown, re-read every time."""
        return None


def open_version_store(versions_dir: Path, database: str | None = None, cache_dir: Path | None = None) -> VersionStore:
    """The PostgreSQL store when a database URL is given (several nodes), else the folder."""
    if database:
        if not str(database).startswith(("postgresql://", "postgres://")):
            raise UserError(f"flow versions database '{database}': not a PostgreSQL URL",
                            "write postgresql://USER@HOST:PORT/DB (flows.versions_database, IVR_VERSIONS_DATABASE "
                            "or --database), or leave it out to keep versions in flows.versions_dir")
        from ivr.flow.versions_pg import PgVersionStore

        return PgVersionStore(str(database), cache_dir).open()
    return DirVersionStore(Path(versions_dir))


class DirVersionStore(VersionStore):
    """`flows.d/NAME/vN/` folders written once (temp folder + rename, then read-only), and
    `flows.d/NAME/state.json` replaced atomically; a lock file serialises writers."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.where = str(self.root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> list[Manifest]:
        folder = self.root / name
        numbers = sorted(int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit() and
                         (p / MANIFEST).is_file()) if folder.is_dir() else []
        return [self.manifest(name, n) for n in numbers]

    def manifest(self, name: str, version: int) -> Manifest:
        path = self.root / name / f"v{version}" / MANIFEST
        try:
            return Manifest(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path}: version v{version} of {name} is missing or damaged ({exc})",
                            "published versions must not be edited; publish the flow again") from exc

    def add_version(self, name: str, contents: dict[str, bytes], entry: str, author: str,
                    message: str) -> Manifest:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        with self._locked(name):
            number = max([m.version for m in self.versions(name)] + [0]) + 1
            final = folder / f"v{number}"
            if final.exists():
                raise UserError(f"{final} already exists: a version is never overwritten",
                                f"remove the stray folder {final} if it has no {MANIFEST}")
            manifest = Manifest(name=name, version=number, entry=entry, hash=file_hash(contents),
                                author=author, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                message=message,
                                files={rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(contents.items())})
            tmp = Path(tempfile.mkdtemp(prefix=f".v{number}-", dir=folder))
            try:
                for rel, data in contents.items():
                    target = tmp / FILES / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                (tmp / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
                _read_only(tmp)
                os.rename(tmp, final)          # atomic: a version is there whole or not at all
            except BaseException:
                _writable(tmp)
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return manifest

    def read_file(self, name: str, version: int, rel: str) -> bytes:
        return (self.root / name / f"v{version}" / FILES / rel).read_bytes()

    def flow_path(self, name: str, version: int) -> Path:
        """The version's flow file, after checking its files still hash as published."""
        manifest = self.manifest(name, version)
        base = self.root / name / f"v{version}" / FILES
        for rel, digest in manifest.files.items():
            try:
                ok = hashlib.sha256((base / rel).read_bytes()).hexdigest() == digest
            except OSError:
                ok = False
            if not ok:
                raise UserError(f"{base / rel}: changed or missing since {name} v{version} was published",
                                "published versions must not be edited; publish a new version instead")
        return base / manifest.entry

    def state(self, name: str) -> dict:
        path = self.root / name / STATE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: does not read ({exc})", "restore it, or set the alias again") from exc
        for key in ("aliases", "history", "canaries"):
            data.setdefault(key, {})
        return data

    def update_state(self, name: str, change: Callable[[dict], None]) -> dict:
        folder = self.root / name
        with self._locked(name):
            state = self.state(name)
            change(state)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(state, out, indent=2, sort_keys=True)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, folder / STATE)
        return state

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        with open(self.root / name / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _read_only(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    folder.chmod(0o555)


def _writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        with contextlib.suppress(OSError):
            path.chmod(0o755 if path.is_dir() else 0o644)
