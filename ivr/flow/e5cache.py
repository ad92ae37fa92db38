"""The phrase vectors of earlier runs, on disk: a flow's choices, the built-ins and the intent library embedded once
per machine, not once per process.

A flow tagged with the intent library hears a thousand sentences or more per language (the library's examples and
what callers were heard saying, ivr.flow.builtins); embedding them costs 3-7 ms each, seconds at every start of
`ivr serve`, `ivr validate` or a test's service. ivr.flow.semantic asks this cache first and records what it had to
embed; `flush` (after a flow is prepared) writes the new vectors beside the old ones.

The file (`$IVR_CACHE_DIR/e5/<key>.npz`, else ~/.cache/ivr/e5/) holds the texts and their float32 vectors exactly as
the engine gave them, so a decision is the same with or without it. Its key names the engine and fingerprints the
model file and the engine's code: another engine, model or ivr version starts a new file. It is written to a
temporary file and renamed, merged with what another process wrote meanwhile. A cache that cannot be read is
ignored (and rewritten); one that cannot be written is skipped with one warning: the vectors are embedded again next
time, nothing is lost.
"""

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
DIMS = 384

_lock = threading.Lock()
_known: dict[str, np.ndarray] | None = None
_new: dict[str, np.ndarray] = {}
_path: Path | None = None
_warned = False


def cache_dir() -> Path:
    return Path(os.environ.get("IVR_CACHE_DIR") or Path.home() / ".cache" / "ivr") / "e5"


def key(engine: str, model_file: str | None, code_files: tuple[str, ...]) -> str:
    """The cache file's name for an engine: its name, the model file's size and first and last MiB, its code."""
    digest = hashlib.sha256(engine.encode())
    if model_file:
        size = os.path.getsize(model_file)
        digest.update(str(size).encode())
        with open(model_file, "rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            digest.update(f.read())
    for path in code_files:
        digest.update(Path(path).read_bytes())
    return f"{engine}-{digest.hexdigest()[:16]}"


def open_cache(name: str) -> None:
    """Use the cache file `name` (from `key`); read it now. Called once, when the engine loads."""
    global _known, _path
    with _lock:
        _path = cache_dir() / f"{name}.npz"
        _known = _read(_path)
        _new.clear()


def get(text: str) -> np.ndarray | None:
    """The vector an earlier run stored for `text`, or None."""
    known = _known
    return known.get(text) if known is not None else None


def put(text: str, vector: np.ndarray) -> None:
    """Record a vector just embedded; `flush` writes it."""
    with _lock:
        if _known is not None:
            _known[text] = vector
            _new[text] = vector


def flush() -> None:
    """Write the vectors embedded since the last flush (merged with the file as it is now)."""
    global _warned
    with _lock:
        if not _new or _path is None:
            return
        merged = _read(_path) | dict(_known or {})
        texts = list(merged)
        blob = np.frombuffer("\0".join(texts).encode("utf-8"), dtype=np.uint8)
        vectors = np.stack([merged[t] for t in texts]).astype(np.float32)
        tmp = None
        try:
            _path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=_path.parent, prefix=".e5-", suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, texts=blob, vectors=vectors)
            os.replace(tmp, _path)
            _new.clear()
        except OSError as exc:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
            if not _warned:
                log.warning("cannot write the phrase vector cache %s (%s): the phrases will be embedded again at the "
                            "next start (set IVR_CACHE_DIR to a writable folder)", _path, exc)
                _warned = True
            _new.clear()


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            texts, vectors = data["texts"].tobytes().decode("utf-8").split("\0"), data["vectors"]
            if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape != (len(texts), DIMS):
                raise ValueError(f"shape {vectors.shape} for {len(texts)} texts")
            return dict(zip(texts, vectors, strict=True))
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError) as exc:
        log.warning("ignoring the phrase vector cache %s (%s): it will be written again", path, exc)
        return {}
