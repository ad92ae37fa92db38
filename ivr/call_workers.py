"""The call loop's worker threads besides the recognizer queue (`call_early.RECOGNIZER`, asr/scheduler.py).

asyncio's default executor (up to 6 threads on 2 cores) used to run prompt synthesis, recorded audio,
the interpreter's turns and the caller sentence's embedding, for every call at once: in a burst of
callers they ran beside the recognizer's workers, one per core, and each decode took longer. Now:

- `on_call_thread`: prompt rendering (a prompt not in memory), recorded audio, an interpreter step that
  may match by meaning: `CALL_WORKERS` threads for all calls, first come first served. Prompts already
  in memory never leave the loop (`CallOutput._in_memory`).
- `embed_ahead`: the caller sentence's e5 vector (`ivr.flow.semantic.sentence_vector`, cached and
  thread-safe) on one thread of its own, before the interpreter handles the turn, so the interpreter's
  own call finds it cached; only when e5 is installed and the words alone may not decide (the sentence
  is not word for word one of the step's expected phrases, and the step is not collecting a slot). The
  interpreter stays pure: it computes the vector itself when it was not computed ahead.
"""

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor

from ivr.events import Listen
from ivr.flow import semantic
from ivr.flow.patterns import normalize

CALL_WORKERS = 2
_CALL_POOL = ThreadPoolExecutor(max_workers=CALL_WORKERS, thread_name_prefix="ivr-call")
_EMBEDDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ivr-e5")


async def on_call_thread(fn, *args):
    """`asyncio.to_thread` on the call workers (the context variables go along, as with to_thread)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_CALL_POOL, call)


@functools.cache
def _e5_installed() -> bool:
    return semantic.available()


def may_embed(text: str, listen: Listen | None) -> bool:
    """Whether matching `text` at `listen` may need its sentence vector (see the module's doc)."""
    if not text or listen is None or listen.slot is not None or not _e5_installed():
        return False
    said = normalize(text)
    return bool(said) and all(normalize(p) != said for p in listen.expect)


async def embed_ahead(text: str, listen: Listen | None) -> bool:
    """Compute the caller sentence's vector on the embedding thread when matching may need it; True if it did."""
    if not may_embed(text, listen):
        return False
    call = functools.partial(contextvars.copy_context().run, semantic.sentence_vector, text)
    await asyncio.get_running_loop().run_in_executor(_EMBEDDER, call)
    return True
