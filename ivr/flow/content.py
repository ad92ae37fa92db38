"""The content words of a sentence, and how many of them an answer's phrases share. A pure function.

A third signal for ivr.flow.understand, next to the sound-alike matcher and the embeddings: "my parcel
is late" shares "package" with "where is my package" once both are reduced to content words. English
words are stemmed (snowballstemmer, the Snowball project's Porter2 stemmer: a well-kept library instead of
hand-written suffix rules) and mapped through a small map of general hotline vocabulary (words callers use
for the same thing: parcel/package, refund/return, human/agent); function words and fillers are dropped.
Mandarin is compared per character, less the grammatical ones (的, 了, 吗 ...).

The map is general vocabulary of customer-service calls, written from no evaluation sentence; a flow's
own `examples:` are the way to teach a step its callers' words.
"""

from functools import lru_cache

import snowballstemmer

from ivr.flow.nlu import FILLERS, FUNCTION_WORDS, is_wide_char
from ivr.flow.patterns import tokens

# Words that say little about what a caller wants, on top of nlu.FUNCTION_WORDS.
STOP_WORDS = FUNCTION_WORDS | FILLERS | frozenset({
    "want", "need", "like", "id", "ill", "get", "have", "has", "just", "some", "how", "what", "when", "where",
    "why", "who", "there", "here", "so", "hi", "hello", "okay", "ok", "we", "they", "he", "she", "was", "were",
    "been", "about", "with", "up", "out", "from", "by", "any", "if", "one", "much", "many", "more", "all",
    "not", "dont", "didnt", "cant",
})
# Grammatical Mandarin characters (particles, pronouns, light verbs).
ZH_STOP_CHARS = frozenset("的了吗我你们是在有个一下这那么呢吧啊嗯呃就要想把给帮请还")
# General hotline vocabulary: a caller's word -> the word a menu is likely to use for it.
SYNONYMS = {
    "parcel": "package", "shipment": "package", "delivery": "package", "deliver": "package", "ship": "package",
    "courier": "package", "stuff": "order", "purchase": "order", "item": "order", "product": "order",
    "refund": "return", "exchange": "return", "swap": "return",
    "charge": "bill", "charged": "bill", "invoice": "bill", "statement": "bill", "overcharge": "bill",
    "payment": "bill", "pay": "bill", "billed": "bill", "fee": "bill",
    "open": "hour", "close": "hour", "closing": "hour", "opening": "hour", "time": "hour",
    "credit": "balance", "left": "balance", "remaining": "balance", "owe": "balance",
    "signal": "service", "internet": "service", "network": "service", "online": "service", "wifi": "service",
    "coverage": "service", "outage": "service", "down": "service", "broadband": "service",
    "recharge": "topup", "reload": "topup", "refill": "topup", "top": "topup", "prepaid": "topup",
    "stolen": "lost", "lose": "lost", "missing": "lost",
    "upgrade": "plan", "downgrade": "plan", "tariff": "plan", "contract": "plan", "bundle": "plan",
    "human": "agent", "person": "agent", "operator": "agent", "representative": "agent", "rep": "agent",
    "someone": "agent", "somebody": "agent", "staff": "agent", "support": "agent",
    "talk": "speak", "chat": "speak",
    "goodbye": "bye", "done": "bye", "finished": "bye",
    "again": "repeat", "pardon": "repeat", "sorry": "repeat",
    "beginning": "menu", "start": "menu", "over": "menu",
    "yeah": "yes", "yep": "yes", "yup": "yes", "yea": "yes", "sure": "yes", "correct": "yes", "right": "yes",
    "exactly": "yes", "absolutely": "yes", "affirmative": "yes", "definitely": "yes",
    "nope": "no", "nah": "no", "negative": "no", "wrong": "no",
}
_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


# A synonym goes to the stem of its common word, the same form a phrase's own word gets ("parcel" and
# "packages" both -> "packag"): the map's words and the phrases' words are stemmed alike.
_COMMON = {k: _stem(v) for k, v in SYNONYMS.items()}
_STEMMED_SYNONYMS = {_stem(k): _stem(v) for k, v in SYNONYMS.items()}


@lru_cache(maxsize=4096)
def content_words(text: str) -> frozenset[str]:
    """The words of `text` that carry its meaning, stemmed and mapped to the common hotline word (stemmed too)."""
    out = set()
    for word in tokens(text):
        if is_wide_char(word):
            if word not in ZH_STOP_CHARS:
                out.add(word)
        elif word in SYNONYMS:
            out.add(_COMMON[word])
        elif word not in STOP_WORDS:
            stem = _stem(word)
            out.add(_STEMMED_SYNONYMS.get(stem, stem))
    return frozenset(out)


@lru_cache(maxsize=4096)
def vocabulary(phrases: tuple[str, ...]) -> tuple[frozenset[str], tuple[frozenset[str], ...]]:
    """All content words of an answer's phrases, and each phrase's own (cached per phrase list)."""
    each = tuple(content_words(p) for p in phrases)
    return frozenset().union(*each), each


def overlap(said: frozenset[str], phrases: tuple[str, ...]) -> tuple[float, float]:
    """(share of the caller's content words that the answer's phrases use, share of its best phrase's
    content words that the caller said)."""
    if not phrases:
        return 0.0, 0.0
    every, each = vocabulary(phrases)
    share = len(said & every) / max(1, len(said))
    best = max(len(words & said) / max(1, len(words)) for words in each)
    return share, best
