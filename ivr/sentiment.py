"""Sentiment of one caller utterance: a score in [-1, 1] (negative = angry/upset), offline.

English: VADER (vaderSentiment, MIT; a rule-based lexicon that handles negation, intensifiers
and "but"). Mandarin: SnowNLP's naive-Bayes classifier (snownlp, MIT; trained on product
reviews). Both ship their data inside the package and download nothing. A hotline has its own
vocabulary ("third time calling", "on hold", "转人工", "没人管"), so each engine's score is
nudged by a small hotline lexicon (below), and the neutral band is set per language; both were
tuned on tests/data/sentiment/*_dev.tsv only (figures on the sealed test split in
docs/BENCHMARKS.md, from scripts/bench_sentiment.py).

The language is the call's (`zh*` -> Mandarin), or guessed from the text (any CJK character).
`score()` is cheap (well under a millisecond) once loaded; `preload()` loads an engine ahead of
the first call (SnowNLP takes ~3 s to load), so the call loop never waits for it.
"""

import logging
import re
import threading
from dataclasses import dataclass

from ivr.lang import is_mandarin

log = logging.getLogger("ivr.sentiment")

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class Thresholds:
    negative: float   # score <= negative: "negative" (an angry or upset caller)
    positive: float   # score >= positive: "positive"


# Tuned on the dev split (scripts/bench_sentiment.py --tune prints the dev optimum).
THRESHOLDS = {"en": Thresholds(-0.15, 0.1), "zh": Thresholds(-0.25, 0.2)}

# Words VADER scores that carry no feeling on a hotline ("i'd like to", "yes please", "technical
# support", "no thanks"): valence 0 (VADER's scale is -4..4).
_EN_NEUTRAL_WORDS = ("please", "support", "like", "no", "yes", "help", "ok", "want", "joke")
_EN_WORDS = {"useless": -2.5, "fed": -1.5, "late": -1.5, "disgrace": -3.0, "unacceptable": -3.0, "mess": -2.0,
             "furious": -3.0, "scam": -3.0, "rude": -2.5, "cheers": 1.5, "star": 1.0, "lovely": 2.8}

# Hotline phrases the general-purpose lexicons miss: (regular expression, weight added to the score).
_EN_CUES: list[tuple[str, float]] = [
    (r"(third|fourth|fifth) time|\w+ times|again and again", -0.45),
    (r"on hold|been waiting|still waiting|waiting for (an|two|three|\w+) (hours?|days?|weeks?|minutes)", -0.5),
    (r"(nobody|no one|noone)", -0.45),
    (r"never (arrived|came|showed|called|answers?|got|received|fixed|works?)", -0.5),
    (r"still (not|hasn't|haven't|hasnt|havent|no|doesn't|doesnt|don't|isn't)", -0.45),
    (r"(fed up|sick and tired|had enough|enough of this|done with you)", -0.6),
    (r"(switch|go|going) to (another|a different) (provider|company|bank)|cancel (everything|my account)", -0.5),
    (r"money back|charg(ed|ing) (me|my card)", -0.45),
    (r"how hard can it be|are you (even|actually) listening|not what i said|that's not it|is a joke", -0.6),
    (r"(talk|speak) to a (real|human|actual) (person|human|being)|stop (asking|transferring)", -0.4),
    (r"(report|complain about) you|consumer protection", -0.5),
    # sarcasm: praise followed by what went wrong again
    (r"\b(great|perfect|wonderful|fantastic|brilliant|just great|oh good)\b.*\b(again|another|start over)", -1.3),
    (r"thanks for nothing", -1.5),
]
# Mandarin: SnowNLP was trained on shopping reviews and calls many neutral hotline requests
# ("我想问一下发票的事") negative, so its score is damped and the hotline lexicon leads.
_ZH_DAMPING = 0.3
_ZH_CUES: list[tuple[str, float]] = [
    (r"太差|最差|很差|真差|差劲|垃圾|破(系统|玩意|服务)", -0.8),
    (r"生气|气死|火大|烦死|烦透|受够|恶心|失望|无语|崩溃", -0.8),
    (r"投诉|消协|曝光|举报|骗人|骗子|坑人", -0.7),
    (r"没人(管|接|理|处理|帮)|根本没|从来没|一直没|还没(有)?(到|来|解决|处理|人)|都没(到|人)", -0.6),
    (r"(第[三四五六]|[三四五六几好多]+)次|多少遍|等了.*(分钟|小时|天|星期)|(两|几|一整)个?(小时|星期|礼拜)", -0.5),
    (r"不(能)?接受|不满意|不行|不对|没用|太笨|太慢|离谱|丢人|一团糟|有这么难|坏了|浪费", -0.6),
    (r"别再|又(要|把|扣|断|坏)|弄(丢|坏)|马上退|退钱|换别家|销户|扣了我", -0.5),
    (r"真是(谢谢|服了|好极了)|好啊好啊|好极了", -0.6),
    (r"谢谢|感谢|多谢", 0.5),
    (r"(?<!不)满意|太好了|太棒|很好|真棒|厉害|开心|完美|喜欢|耐心|好消息|修好|解决了|好用|顺利|愉快", 0.6),
]


def language_of(text: str, language: str | None = None) -> str:
    """"zh" or "en": the call's language if given, else a guess from the characters."""
    if language:
        return "zh" if is_mandarin(language) else "en"
    return "zh" if _CJK.search(text) else "en"


class _English:
    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.vader = SentimentIntensityAnalyzer()
        self.vader.lexicon.update({w: 0.0 for w in _EN_NEUTRAL_WORDS})
        self.vader.lexicon.update(_EN_WORDS)
        self.cues = [(re.compile(rf"\b{p}\b"), w) for p, w in _EN_CUES]

    def score(self, text: str) -> float:
        lowered = text.lower()
        base = self.vader.polarity_scores(lowered)["compound"]
        return base + sum(w for p, w in self.cues if p.search(lowered))


class _Mandarin:
    def __init__(self) -> None:
        from snownlp import sentiment as snow  # loads its classifier and segmenter (~3 s)

        self.snow = snow
        self.cues = [(re.compile(p), w) for p, w in _ZH_CUES]

    def score(self, text: str) -> float:
        base = _ZH_DAMPING * (2.0 * self.snow.classify(text) - 1.0)
        return base + sum(w for p, w in self.cues if p.search(text))


_ENGINES: dict[str, _English | _Mandarin] = {}
_LOCK = threading.Lock()


def preload(language: str = "en") -> None:
    """Load the engine for a language now (call from a thread at service start)."""
    _engine(language_of("", language))


def _engine(lang: str) -> _English | _Mandarin:
    engine = _ENGINES.get(lang)
    if engine is None:
        with _LOCK:
            engine = _ENGINES.get(lang)
            if engine is None:
                engine = _Mandarin() if lang == "zh" else _English()
                _ENGINES[lang] = engine
    return engine


def score(text: str, language: str | None = None) -> float | None:
    """Sentiment of a caller utterance in [-1, 1]; None when there are no words to judge.

    Never raises for the caller's sake: an engine that fails logs once a call-site and gives None.
    """
    text = " ".join((text or "").split())
    if not text or not any(c.isalnum() for c in text):
        return None
    lang = language_of(text, language)
    try:
        value = _engine(lang).score(text)
    except Exception:   # a sentiment failure must never break a call
        log.exception("sentiment scoring failed for a %s utterance", lang)
        return None
    return round(max(-1.0, min(1.0, value)), 4)


def label(value: float | None, language: str = "en") -> str:
    """'negative', 'neutral' or 'positive' for a score (None: neutral)."""
    if value is None:
        return "neutral"
    t = THRESHOLDS[language_of("", language)]
    if value <= t.negative:
        return "negative"
    return "positive" if value >= t.positive else "neutral"


def is_negative(value: float | None, language: str = "en") -> bool:
    return label(value, language) == "negative"
