"""Matching what the caller said against what a step expects. A pure function.

Phrases are matched on word boundaries (CJK: per character), tolerating recognition
errors with rapidfuzz ("attract my order" still matches "track my order"), and extra words
around the phrase ("yes I'd like to track my order please").
"""

from dataclasses import dataclass

from rapidfuzz import fuzz

from ivr.flow.patterns import tokens

DEFAULT_THRESHOLD = 0.8
SHORT_PHRASE_CHARS = 2   # Latin-script phrases this short must be heard word for word


@dataclass(frozen=True, slots=True)
class Intent:
    """A named answer and the normalised phrases that say it."""

    name: str
    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Match:
    name: str
    score: float      # 0..1; 1.0 = the phrase was heard word for word
    phrase: str


def match(text: str, intents: tuple[Intent, ...], threshold: float = DEFAULT_THRESHOLD) -> Match | None:
    """Best intent for `text`, or None if nothing scores at least `threshold`."""
    heard = tokens(text)
    if not heard:
        return None
    best: Match | None = None
    best_len = 0
    for intent in intents:
        for phrase in intent.phrases:
            wanted = tokens(phrase)
            score = phrase_score(heard, wanted)
            # Prefer the higher score; on a tie, the longer (more specific) phrase.
            if score >= threshold and (
                best is None or score > best.score or (score == best.score and len(wanted) > best_len)
            ):
                best = Match(intent.name, round(score, 3), phrase)
                best_len = len(wanted)
    return best


def phrase_score(heard: list[str], wanted: list[str]) -> float:
    """How well some window of `heard` says `wanted`: exact run = 1.0, else fuzzy ratio."""
    if not wanted:
        return 0.0
    n = len(wanted)
    for i in range(len(heard) - n + 1):
        if heard[i : i + n] == wanted:
            return 1.0
    joiner = "" if _is_cjk(wanted) else " "
    target = joiner.join(wanted)
    if joiner and len(target) <= SHORT_PHRASE_CHARS:
        return 0.0   # "no" vs "not"/"now": one letter is too much of a short word to guess

    best = 0.0
    for size in {max(1, n - 1), n, n + 1}:
        for i in range(max(1, len(heard) - size + 1)):
            window = joiner.join(heard[i : i + size])
            best = max(best, fuzz.ratio(window, target) / 100.0)
    # Fuzzy never reaches an exact match's score.
    return min(best, 0.99)


def _is_cjk(words: list[str]) -> bool:
    return all(len(w) == 1 and ord(w) >= 0x3040 for w in words)
