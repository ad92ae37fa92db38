"""Prompt cache: synthesize each distinct prompt once, keep it on disk and in memory.

Entries are content-addressed: sha256 over (format version, engine name, output rate, text), stored
as `<cache_dir>/<key[:2]>/<key>.wav` (mono int16 at the cache's rate). Files are written to a
temporary name and `os.replace`d into place, so another process never reads half a file. Changing
the voice, the rate or the text gives a new key; stale files are simply never read again.

Arrays handed out are shared with the in-memory cache and are read-only; copy before modifying.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ivr.errors import UserError
from ivr.tts.base import TtsEngine

log = logging.getLogger(__name__)

# Bump when the on-disk content for the same key would change (e.g. a new resampler setting).
FORMAT_VERSION = 1

# Prompts synthesised ahead of need (`prefetch`): one thread for the process, so ahead-of-time work
# never takes more than one core from the calls' own decoding and synthesis.
_PREFETCH_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ivr-tts-prefetch")


def default_cache_dir() -> Path:
    """Where synthesised prompts are kept between runs: $IVR_CACHE_DIR/prompts or ~/.cache/ivr/prompts."""
    return Path(os.environ.get("IVR_CACHE_DIR") or Path.home() / ".cache" / "ivr") / "prompts"


class PromptCache:
    """Thread-safe TTS prompt cache in front of one engine, at one output rate."""

    def __init__(
        self,
        engine: TtsEngine,
        cache_dir: Path | str,
        rate_hz: int = 16_000,
        memory_items: int = 256,
    ) -> None:
        self.engine = engine
        self.cache_dir = Path(cache_dir).expanduser()
        self.rate_hz = int(rate_hz)
        self.memory_items = max(0, int(memory_items))
        self._lock = threading.Lock()
        self._memory: OrderedDict[object, np.ndarray] = OrderedDict()
        # key -> [lock, users]: one synthesis per key at a time within this process.
        self._inflight: dict[str, list] = {}
        self._disk_ok = True
        self._stats = {
            "memory_hits": 0,
            "disk_hits": 0,
            "misses": 0,
            "recorded_hits": 0,
            "recorded_loads": 0,
            "prefetched": 0,
        }

    # --- keys -------------------------------------------------------------------------------

    def key(self, text: str) -> str:
        payload = json.dumps(
            [FORMAT_VERSION, self.engine.name, self.rate_hz, text], ensure_ascii=False
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def path_for(self, text: str) -> Path:
        key = self.key(text)
        return self.cache_dir / key[:2] / f"{key}.wav"

    # --- synthesized prompts ----------------------------------------------------------------

    def get(self, text: str) -> np.ndarray:
        """Mono int16 samples of `text` at `rate_hz`, synthesizing only on a cache miss."""
        return self._get(text)[0]

    def synthesize(self, text: str) -> np.ndarray:
        """Like `get`, but nothing is kept, on disk or in memory: for a prompt that reads back a
        card number or PIN (the call loop asks `ivr.privacy`)."""
        with self._lock:
            self._stats["misses"] += 1
        return self._synthesize(text)

    def in_memory(self, text: str) -> np.ndarray | None:
        """The samples of `text` if they are in memory now, else None; never reads disk or synthesises,
        so the call loop can take a cached prompt without a thread hop."""
        key = self.key(text)
        with self._lock:
            cached = self._memory_get(key)
            if cached is not None:
                self._stats["memory_hits"] += 1
            return cached

    def has(self, text: str) -> bool:
        """True if `text` is cached in memory or on disk (a `get` would not synthesize)."""
        key = self.key(text)
        with self._lock:
            if key in self._memory:
                return True
        return self._disk_path(key).is_file()

    def warm(self, texts: Iterable[str]) -> int:
        """Synthesize every text not cached yet; returns how many this call synthesized."""
        synthesized = 0
        for text in dict.fromkeys(texts):  # unique, in order
            if not self.has(text):
                synthesized += self._get(text)[1]
        return synthesized

    def prefetch(self, texts: Iterable[str]) -> list[Future]:
        """Start synthesising, in the background, each text not cached yet (a prompt the call will
        probably play next); returns the futures (their result: whether this one synthesised). A
        `get` of the same text meanwhile waits for that synthesis rather than running a second."""
        futures = []
        for text in dict.fromkeys(texts):
            if text and not self.has(text):
                futures.append(_PREFETCH_POOL.submit(self._prefetch_one, text))
        return futures

    def _prefetch_one(self, text: str) -> bool:
        synthesized = self._get(text)[1]
        if synthesized:
            with self._lock:
                self._stats["prefetched"] += 1
        return synthesized

    def _get(self, text: str) -> tuple[np.ndarray, bool]:
        key = self.key(text)
        with self._lock:
            cached = self._memory_get(key)
            if cached is not None:
                self._stats["memory_hits"] += 1
                return cached, False
            entry = self._inflight.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                # Another thread may have filled it while we waited for the key lock.
                with self._lock:
                    cached = self._memory_get(key)
                    if cached is not None:
                        self._stats["memory_hits"] += 1
                        return cached, False
                pcm = self._read_disk(key)
                if pcm is not None:
                    with self._lock:
                        self._stats["disk_hits"] += 1
                        self._memory_put(key, pcm)
                    return pcm, False
                pcm = self._synthesize(text)
                self._write_disk(key, pcm)
                with self._lock:
                    self._stats["misses"] += 1
                    self._memory_put(key, pcm)
                return pcm, True
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    self._inflight.pop(key, None)

    def _synthesize(self, text: str) -> np.ndarray:
        from ivr.audio.resample import resample

        pcm = np.asarray(self.engine.synthesize(text))
        if pcm.dtype != np.int16:
            raise TypeError(f"{self.engine.name} returned {pcm.dtype} samples, expected int16")
        pcm = pcm.reshape(-1)
        if self.engine.rate_hz != self.rate_hz and len(pcm):
            pcm = resample(pcm, self.engine.rate_hz, self.rate_hz)
        return _frozen(pcm)

    # --- disk -------------------------------------------------------------------------------

    def _disk_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.wav"

    def _read_disk(self, key: str) -> np.ndarray | None:
        path = self._disk_path(key)
        if not path.is_file():
            return None
        from ivr.audio.wavio import read_audio

        try:
            return _frozen(read_audio(path, rate_hz=self.rate_hz))
        except (UserError, OSError, RuntimeError, ValueError) as exc:
            log.warning("unreadable TTS cache file %s (%s); synthesizing again", path, exc)
            return None

    def _write_disk(self, key: str, pcm: np.ndarray) -> None:
        if not self._disk_ok or len(pcm) == 0:
            return  # empty audio stays in memory only (a 0-frame WAV is not worth a file)
        from ivr.audio.wavio import write_wav

        final = self._disk_path(key)
        tmp_name = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                dir=final.parent, prefix=f".{key[:16]}.", suffix=".tmp.wav"
            )
            os.close(fd)
            write_wav(tmp_name, pcm, self.rate_hz)
            os.replace(tmp_name, final)
            tmp_name = None
        except (OSError, UserError) as exc:
            # Keep serving prompts from memory rather than failing calls.
            self._disk_ok = False
            log.warning("cannot write TTS cache in %s (%s); caching in memory only",
                        self.cache_dir, exc)
        finally:
            if tmp_name is not None:
                Path(tmp_name).unlink(missing_ok=True)

    # --- recorded prompts -------------------------------------------------------------------

    def load_recorded(self, path: Path | str) -> np.ndarray:
        """A recorded WAV prompt as mono int16 at `rate_hz`, played as recorded (not synthesized).

        Cached in memory by (path, mtime, size), so an edited file is picked up again.
        """
        path = Path(path).expanduser()
        try:
            st = path.stat()
        except OSError as exc:
            raise UserError(
                f"recorded prompt not found: {path}",
                "check the audio file path in the flow (relative paths are resolved from the "
                "flow file's folder)",
            ) from exc
        mkey = ("recorded", str(path.resolve()), st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._memory_get(mkey)
            if cached is not None:
                self._stats["recorded_hits"] += 1
                return cached
        from ivr.audio.wavio import read_audio

        pcm = _frozen(read_audio(path, rate_hz=self.rate_hz))
        with self._lock:
            self._stats["recorded_loads"] += 1
            self._memory_put(mkey, pcm)
        return pcm

    # --- stats and memory -------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters: hits (= memory_hits + disk_hits), misses (= syntheses), recorded_*."""
        with self._lock:
            out = dict(self._stats)
            out["hits"] = out["memory_hits"] + out["disk_hits"]
            out["memory_items"] = len(self._memory)
        return out

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()

    def _memory_get(self, key: object) -> np.ndarray | None:
        """Caller holds self._lock."""
        pcm = self._memory.get(key)
        if pcm is not None:
            self._memory.move_to_end(key)
        return pcm

    def _memory_put(self, key: object, pcm: np.ndarray) -> None:
        """Caller holds self._lock."""
        if self.memory_items == 0:
            return
        self._memory[key] = pcm
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)


def _frozen(pcm: np.ndarray) -> np.ndarray:
    """A private, read-only copy: cached arrays are shared between callers."""
    out = np.array(pcm, dtype=np.int16).reshape(-1)
    out.setflags(write=False)
    return out
