"""The call loop's worker threads besides the recognizer queue (`call_early.RECOGNIZER`, asr/scheduler.py).

asyncio's default executor (up to 6 threads on 2 cores) used to run prompt synthesis, recorded audio,
the interpreter's turns and the caller sentence's embedding, for every call at once: in a burst of
callers they ran beside the recognizer's workers, one per core, and each decode took longer. Now:

- `on_call_thread`: prompt rendering (a prompt not in memory), recorded audio, an interpreter step that
  may match by meaning: `CALL_WORKERS` threads for all calls, first come first served. Prompts already
  in memory never leave the loop (`CallOutput._in_memory`).
- `embed_ahead`: the caller sentence's e5 vector (`ivr.flow.semantic.sentence_vector`, cached and
  thread-safe) on one thread of its own, before the interpreter handles the turn, so the interpreter's
  own call finds it cached; exactly when the interpreter's turn will compute it (`Interpreter.needs_vector`:
  the same pure helpers the matcher decides with, so a vector is never computed for nothing, e.g. for a step
  phrase heard word for word inside a longer sentence, and never missed, e.g. a global at a slot step or the
  knowledge base). The question itself (a sound-alike match, ~0.5 ms) runs on that thread too. The
  interpreter stays pure: it computes the vector itself when it was not computed ahead.
  `IVR_EMBED_AHEAD=0` in the environment turns embedding ahead off (the interpreter's turn embeds; for A/B
  measurements, docs/BENCHMARKS.md).
"""

import asyncio
import contextvars
import functools
import os
from concurrent.futures import ThreadPoolExecutor

from ivr.events import Heard
from ivr.flow import semantic
from ivr.flow.interpreter import Interpreter
from ivr.flow.state import CallState

CALL_WORKERS = 2
_CALL_POOL = ThreadPoolExecutor(max_workers=CALL_WORKERS, thread_name_prefix="ivr-call")
_EMBEDDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ivr-e5")


async def on_call_thread(fn, *args):
    """`asyncio.to_thread` on the call workers (the context variables go along, as with to_thread)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_CALL_POOL, call)


def embedding_ahead() -> bool:
    """Whether the call loop embeds ahead (`IVR_EMBED_AHEAD`, default on; "0" turns it off)."""
    return os.environ.get("IVR_EMBED_AHEAD", "1") != "0"


def embed_if_needed(interp: Interpreter, state: CallState, event: Heard) -> bool:
    """The caller sentence's vector, computed when the interpreter's turn for `event` will use it (cached, for
    that turn to find); True if it did. Blocking: run on the embedding thread."""
    if not interp.needs_vector(state, event):
        return False
    semantic.sentence_vector(event.text)
    return True


async def embed_ahead(interp: Interpreter, state: CallState, event: Heard) -> bool | None:
    """`embed_if_needed` on the embedding thread: True if it embedded, False if the turn needs no vector, None
    when not asked (embedding ahead turned off, or no words)."""
    if not embedding_ahead() or not event.text:
        return None
    call = functools.partial(contextvars.copy_context().run, embed_if_needed, interp, state, event)
    return await asyncio.get_running_loop().run_in_executor(_EMBEDDER, call)
