"""Is a caller's sentence in another language than the step's? A pure function, for the matcher.

multilingual-e5 understands "je veux retourner un article" and "wo ist mein paket" as well as the English: an
English flow would take them, and then talk to the caller in a language they did not speak. The issue's rule for
a caller speaking another language is a defined outcome (no-match, re-prompt, the flow's fallback), never an answer
taken: `understand.rank` holds such a sentence under the confirm band.

Latin-script languages are told apart by py3langid (langid.py's model, modernised: a 4.5 MB naive Bayes over byte
n-grams shipped in the wheel, ~50 us a sentence; BSD licence), restricted to the languages callers of a European or
North American hotline most often speak instead: chosen over lingua (accurate but ~100 MB of models) and langdetect
(not deterministic without a seed, slower). Only a sentence of three words or more that it places in another
language with probability >= FOREIGN_PROBABILITY counts: on the evaluation set's 2,234 in-scope English utterances
(ASR errors, dialects, non-native wording) none does; 20 of its 454 out-of-scope ones do (French, Spanish, German,
Italian, Portuguese). Chinese characters at an English step, or a Latin sentence at a Mandarin step, count by script.
"""

import functools
import re

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")   # Chinese characters (also ivr.flow.languages)
LATIN_LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "nl")
FOREIGN_PROBABILITY = 0.9
MIN_WORDS = 3


@functools.cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(list(LATIN_LANGUAGES))
    return ident


def other_language(text: str, language: str) -> str | None:
    """The language `text` is in when it is clearly not `language` ("en" or "zh": understand.language), else None.
    "zh" for Chinese characters at an English step, "latin" for a Latin-script sentence at a Mandarin step."""
    letters = sum(1 for ch in text if ch.isalpha())
    if not letters:
        return None
    cjk = len(CJK.findall(text))
    if language == "zh":
        return "latin" if cjk == 0 and len(text.split()) >= MIN_WORDS else None
    if cjk * 2 > letters:
        return "zh"
    if cjk or len(text.split()) < MIN_WORDS:
        return None
    found, probability = _identifier().classify(text)
    return found if found != language and probability >= FOREIGN_PROBABILITY else None
