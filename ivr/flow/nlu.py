"""Matching what the caller said against what a step expects. A pure function.

The text comes from offline ASR, so it has recognition errors. A phrase heard word for word
(inside a longer sentence too) scores 1.0. Otherwise the best window of the sentence is
compared with the phrase letter by letter (rapidfuzz), and that is checked word by word:
every word of the phrase needs a counterpart that looks or sounds like it (metaphone), the
content words counting twice as much as "my", "is", "the". Mandarin is compared per character
and per syllable (pinyin), so 定单 reads as 订单 and 退火 as 退货. Words of a phrase that came in
another order ("the status of my order" for "order status") get a lower score.

Scores are graded for two thresholds: at or above `DEFAULT_THRESHOLD` a step takes the answer,
between `CONFIRM_THRESHOLD` and that it may ask "did you mean ...?". The thresholds and weights
come from measurement: scripts/bench_nlu.py and docs/BENCHMARKS.md.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

import jellyfish
from pypinyin import lazy_pinyin
from rapidfuzz import fuzz, process

from ivr.flow.patterns import tokens

DEFAULT_THRESHOLD = 0.8     # at or above: take the answer
CONFIRM_THRESHOLD = 0.6     # at or above (and under the accept threshold): ask "did you mean ...?"
SHORT_PHRASE_CHARS = 2      # Latin-script phrases this short must be heard word for word
FUZZY_CAP = 0.99            # a fuzzy match never reaches an exact one
NEGATED_SCORE = 0.5         # "not sure" is not "sure": below the confirm threshold
OUT_OF_ORDER = 0.9          # all the words of a phrase, in another order
SOUNDS_ALIKE = 0.9          # two words with the same metaphone code ("wear", "where")
SAME_SYLLABLE = 0.97        # two characters read alike (定/订)
CJK_GAP = 0.2               # a character heard inside a Mandarin phrase that is not part of it
MIN_WORD_SIM = 0.6          # a word less like the phrase's word than this is no counterpart

# Noises ASR writes for hesitation; they are dropped before matching (unless a phrase says them).
FILLERS = frozenset({"um", "umm", "uh", "uhm", "er", "erm", "hmm", "mm", "ah", "嗯", "呃", "啊"})
NEGATORS = frozenset({"not", "never", "dont", "didnt", "isnt", "cant", "wont", "aint", "不", "没", "别"})
# Words that carry little of a phrase's meaning: they weigh half as much as the others.
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "my", "your", "our", "me", "i", "im", "you", "to", "of", "on", "in", "at", "for", "and",
    "is", "are", "am", "it", "its", "this", "that", "thats", "do", "does", "did", "can", "could", "will", "would",
    "be", "with", "please",
})


@dataclass(frozen=True, slots=True)
class Intent:
    """A named answer and the normalised phrases that say it.

    `examples`: whole sentences callers said for it (scored by meaning only, ivr.flow.understand);
    `avoid`: sentences it must not match (a choice's `not:`); `builtin`: the built-in intent it hears too
    (ivr.flow.builtins: its sentences are in `examples`/`avoid`; a yes or no also weighs the yes/no rules).
    """

    name: str
    phrases: tuple[str, ...]
    examples: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()
    builtin: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    name: str
    score: float      # 0..1; 1.0 = the phrase was heard word for word
    phrase: str


def match(text: str, intents: tuple[Intent, ...], threshold: float = DEFAULT_THRESHOLD) -> Match | None:
    """Best intent for `text`, or None if nothing scores at least `threshold`."""
    found = match_all(text, intents, threshold)
    return found[0] if found else None


def match_all(text: str, intents: tuple[Intent, ...], threshold: float = 0.0) -> list[Match]:
    """Every intent's best phrase scoring at least `threshold` (and above 0), best first.

    The first is what `match` returns; the second is the runner-up a "did you mean" prompt can offer.
    """
    heard = _heard(text)
    if not heard:
        return []
    best: dict[str, tuple[float, int, str]] = {}
    for intent in intents:
        for phrase in intent.phrases:
            wanted = _phrase(phrase)
            score = _score(heard, wanted)
            # Prefer the higher score; on a tie, the longer (more specific) phrase.
            key = (score, len(wanted.words), phrase)
            if score > 0 and score >= threshold and (intent.name not in best or key[:2] > best[intent.name][:2]):
                best[intent.name] = key
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))
    return [Match(name, round(score, 3), phrase) for name, (score, _, phrase) in ranked]


def phrase_score(heard: list[str], wanted: list[str]) -> float:
    """How well some part of `heard` says `wanted` (both as `tokens` gives them): exact run = 1.0."""
    return _score(_heard(" ".join(heard)), _phrase(" ".join(wanted)))


# ---- compiled phrases and utterances --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Words:
    words: tuple[str, ...]
    text: str          # the words joined (CJK without spaces)
    sounds: tuple[str, ...]   # how each word sounds: its metaphone (Latin) or pinyin syllable (CJK)
    cjk: bool


def _words(words: list[str]) -> _Words:
    cjk = bool(words) and all(is_wide_char(w) for w in words)
    return _Words(tuple(words), ("" if cjk else " ").join(words), tuple(sound_of(w) for w in words), cjk)


@dataclass(frozen=True, slots=True)
class _Heard:
    raw: _Words        # every word
    clean: _Words      # fillers dropped


@lru_cache(maxsize=1024)
def _heard(text: str) -> _Heard | None:
    raw = tokens(text)
    clean = [w for w in raw if w not in FILLERS]
    return _Heard(_words(raw), _words(clean)) if clean else None


@dataclass(frozen=True, slots=True)
class _Phrase(_Words):
    weights: tuple[float, ...] = ()
    content: tuple[str, ...] = ()      # the words that are not function words
    says_filler: bool = False


@lru_cache(maxsize=4096)
def _phrase(phrase: str) -> _Phrase:
    words = tokens(phrase)
    base = _words(words)
    weights = tuple(0.5 if w in FUNCTION_WORDS else 1.0 for w in words)
    content = tuple(w for w in words if w not in FUNCTION_WORDS)
    return _Phrase(base.words, base.text, base.sounds, base.cjk, weights, content, any(w in FILLERS for w in words))


# ---- scoring --------------------------------------------------------------------------


def _score(heard: _Heard | None, p: _Phrase) -> float:
    if heard is None or not p.words:
        return 0.0
    h = heard.raw if p.says_filler else heard.clean
    n = len(p.words)
    for i in range(len(h.words) - n + 1):
        if h.words[i : i + n] == p.words:
            return _exact(h.words, i, p)
    if (not p.cjk and len(p.text) <= SHORT_PHRASE_CHARS) or (p.cjk and n == 1):
        return 0.0   # "no" vs "now", 是 vs 事: too little of a word to guess at
    if p.cjk:
        return min(FUZZY_CAP, _cjk(h, p))
    return min(FUZZY_CAP, max(_latin(h, p), _out_of_order(h, p)))


def _exact(words: tuple[str, ...], i: int, p: _Phrase) -> float:
    before = words[i - 1] if i > 0 else ""
    if before in NEGATORS and p.words[0] not in NEGATORS:
        return NEGATED_SCORE
    if p.cjk and len(p.words) == 1 and i > 0:
        return 0.0   # one character (是, 对) answers only at the start: 这是什么 is not "yes"
    return 1.0


def _cjk(h: _Words, p: _Phrase) -> float:
    """Characters of the phrase found in order in the sentence, a homophone counting a little less.

    Characters the ASR inserted inside the match cost `CJK_GAP` each (查一下订单 still says 查订单),
    characters of the phrase not heard count nothing: a local alignment, the phrase against any
    stretch of the sentence.
    """
    n = len(p.words)
    if sum(1 for s in p.sounds if s in h.sounds) < CONFIRM_THRESHOLD * n:
        return 0.0   # cannot reach the confirm band: skip the alignment
    best = 0.0
    prev = [0.0] * (n + 1)
    for ch, sound in zip(h.words, h.sounds, strict=True):
        row = [0.0] * (n + 1)
        for j in range(1, n + 1):
            same = 1.0 if ch == p.words[j - 1] else SAME_SYLLABLE if sound == p.sounds[j - 1] else 0.0
            row[j] = max(prev[j - 1] + same if same else 0.0, prev[j] - CJK_GAP, row[j - 1])
        best = max(best, row[n])
        prev = row
    return best / n


def _latin(h: _Words, p: _Phrase) -> float:
    """Letter ratio of the best window, held down by the phrase words that have no counterpart in it."""
    n = len(p.words)
    best, best_window = _best_window(h, p)
    if best < CONFIRM_THRESHOLD:
        return best
    # Counterparts: a word of the window, or two of them run together ("a gent" for "agent").
    # ... and two words of the phrase may be heard as one ("goodbye" for "good bye").
    pairs = ["".join(best_window[i : i + 2]) for i in range(len(best_window) - 1)]
    sims = [max(word_similarity(w, x) for x in (*best_window, *pairs)) for w in p.words]
    for i in range(n - 1):
        run_together = max(word_similarity(p.words[i] + p.words[i + 1], x) for x in best_window)
        sims[i], sims[i + 1] = max(sims[i], run_together), max(sims[i + 1], run_together)
    return min(best, sum(wt * sim for wt, sim in zip(p.weights, sims, strict=True)) / sum(p.weights))


def _best_window(h: _Words, p: _Phrase) -> tuple[float, tuple[str, ...]]:
    """The run of n-1, n or n+1 of the sentence's words (n: the phrase's) whose letters are most like the
    phrase's, and that likeness (0-1); a tie goes to the first run, shortest size first, left to right."""
    n = len(p.words)
    texts, windows = _windows(h.words, tuple({max(1, n - 1), n, n + 1}))
    _text, score, index = process.extractOne(p.text, texts, scorer=fuzz.ratio)   # the first best, in C
    return score / 100.0, windows[index]


@lru_cache(maxsize=1024)
def _windows(words: tuple[str, ...], sizes: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """The sentence's runs of `sizes` words (in that order, left to right), and each run as text: the same
    for every phrase of a length, so they are made once per sentence, not once per phrase."""
    windows = tuple(words[i : i + size] for size in sizes for i in range(max(1, len(words) - size + 1)))
    return tuple(" ".join(w) for w in windows), windows


def _out_of_order(h: _Words, p: _Phrase) -> float:
    """All content words of the phrase somewhere in the sentence, in any order ("status of my order")."""
    if len(p.content) < 2:
        return 0.0
    return OUT_OF_ORDER * min(max(word_similarity(w, x) for x in h.words) for w in p.content)


@lru_cache(maxsize=8192)
def word_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    sim = fuzz.ratio(a, b) / 100.0
    if min(len(a), len(b)) >= 3 and sound_of(a) == sound_of(b):
        sim = max(sim, SOUNDS_ALIKE)
    return sim if sim >= MIN_WORD_SIM else 0.0


@lru_cache(maxsize=8192)
def sound_of(word: str) -> str:
    """How `word` sounds: toneless pinyin for a CJK character (定, 订: ding), else its metaphone."""
    return lazy_pinyin(word)[0] if is_wide_char(word) else (jellyfish.metaphone(word) or word)


def is_wide_char(word: str) -> bool:
    """Whether `word` is one character of an East Asian script (kana, hangul, Chinese: from U+3040), as
    patterns.tokens splits them: the one test the matchers share (a pinyin sound, a content word, a FAQ term)."""
    return len(word) == 1 and ord(word) >= 0x3040


WIDE = re.compile("[\u3040-\U0010ffff]")   # a character is_wide_char accepts: WIDE.search(text) scans in C
