"""A request followed by why the caller makes it: "say that again i'm on my lunch break", "pardon the bus was too
loud", "start over please i pressed the wrong thing", "agent please i've been waiting for ages".

Callers in a noisy place, interrupted, or who pressed the wrong key say so after the request. The reason is most of
the sentence, so the embedding of the whole sentence is about canteens, buses and kids, and the request's own words
cover too little of it to count (a global's words count in full only when they are half the sentence). `head`
finds where the reason starts (im, i was, i pressed, the line is, my kid was, its, because ...) and gives the
request before it; `apart` ranks that head too and takes a global answer it names with confidence when the whole
sentence named nothing with confidence. Only the globals repeat, agent and main menu: a step's own answer usually
lies in the reason ("cancel it i bought the wrong size"). English only: a Mandarin step's sound-alike
matcher counts characters, which a reason does not dilute in the same way. A pure function of the words.
"""

from collections.abc import Callable
from dataclasses import replace

from ivr.flow.nlu import DEFAULT_THRESHOLD as ACCEPT
from ivr.flow.patterns import normalize

# Words that start a reason (normalised: lower case, no apostrophes), and "the/my <one or two words> <verb>".
REASON_STARTS = tuple(tuple(r.split()) for r in (
    "im", "i am", "i was", "i wasnt", "ive", "i have been", "i got", "i pressed", "i hit", "i mixed", "i missed",
    "i picked", "i chose", "i made", "i messed", "i said", "i cant hear", "i couldnt hear", "i didnt hear", "its",
    "it is", "theres", "there is", "there was", "because", "cause", "cos", "youre breaking", "you broke",
    "you were breaking", "you cut"))
REASON_VERBS = frozenset({"is", "was", "are", "were", "isnt", "wasnt", "keeps", "kept", "cut", "broke", "dropped",
                          "went", "started"})
MIN_HEAD_WORDS = 1
GLOBALS = ("repeat", "agent", "main_menu")      # built-in intents (or global names) a reason may follow


def head(text: str) -> str | None:
    """The words before the first reason in `text`, or None when there is none, nothing before it, or `text` is
    not in Latin letters."""
    words = normalize(text).split()
    if not words or not all(w.isascii() for w in words):
        return None
    for i in range(MIN_HEAD_WORDS, len(words) - 1):
        if any(tuple(words[i:i + len(r)]) == r for r in REASON_STARTS) or _noun_verb(words, i):
            return " ".join(words[:i])
    return None


def _noun_verb(words: list[str], i: int) -> bool:
    """'the line is bad', 'my kid was yelling': the/my, one or two words, a verb, and something after it."""
    return words[i] in ("the", "my") and any(
        i + k + 1 < len(words) and words[i + k] in REASON_VERBS for k in (1, 2))


def apart(text: str, ranked: list, rank: Callable[[str], list], answers: frozenset[str]) -> list:
    """`ranked`, or the candidates of the request before the reason (`rank(head)`) when the whole sentence took
    nothing with confidence and the head takes one of `answers` (the globals that ask to repeat, for a person, for
    the main menu; not goodbye: "hello good afternoon i am calling because ..." is a greeting, then the request) with
    confidence; their signal says so."""
    if not answers or (ranked and (ranked[0].score >= ACCEPT or ranked[0].signal.startswith("off topic"))):
        return ranked       # taken, or held as an aside ("not you i was talking to my husband")
    said = head(text)
    if not said:
        return ranked
    again = rank(said)
    if not again or again[0].score < ACCEPT or again[0].name not in answers:
        return ranked
    return [replace(c, signal=f"{c.signal}, before the reason '{said}'") for c in again]
