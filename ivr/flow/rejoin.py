"""Words the recognizer split in two, joined again before matching: "re turn", "cred it", "opera tor", "par sell".

Speech recognizers (and callers who pause inside a word) give a long word as two short ones. Neither half means
much to the sound-alike matcher or to the sentence embedding, so "i want to make a re turn" scored below the
"did you mean" band. Here two neighbouring words are replaced by a word of the offered answers' own vocabulary
(their phrases and examples) when, run together, they are that word and one half is not a word of that vocabulary
("my order" stays two words), or sound like it (the same metaphone: "par sell" / "parcel") and neither half is one.
Latin script only: a Mandarin sentence has no spaces to split at. Pure, and cached per set of answers.
"""

from functools import lru_cache

from ivr.flow.nlu import Intent, sound_of
from ivr.flow.patterns import normalize

MIN_JOINED_CHARS = 5   # a joined word this long at least: "in to" is not worth a guess
MIN_SOUND_CHARS = 6    # ... and this long when it is joined by its sound


def rejoin(text: str, intents: tuple[Intent, ...]) -> str:
    """`text` with split words joined (each pair replaced by the vocabulary's word); unchanged when nothing is."""
    said = text.split()
    if len(said) < 2 or not text.isascii():
        return text
    words, sounds = _vocabulary(intents)
    if not words:
        return text
    keys = [normalize(w) for w in said]     # "Turn," is "turn"; the words not joined keep their own spelling
    out, i = [], 0
    while i < len(said):
        if i + 1 < len(said):
            found = _joined(keys[i], keys[i + 1], words, sounds)
            if found:
                out.append(found)
                i += 2
                continue
        out.append(said[i])
        i += 1
    return " ".join(out) if len(out) < len(said) else text


def _joined(a: str, b: str, words: frozenset[str], sounds: dict[str, str]) -> str:
    """The vocabulary word that `a` and `b` run together are, when one of them is not a vocabulary word ("in voice");
    or the one they sound like, when neither is ("par sell", "mow bile": a sound guess next to a word the answers use
    turned "my bill" into "mobile" and "the net is" into "the needs" on the tuning parts); else ""."""
    if not (a.isalpha() and b.isalpha()) or (a in words and b in words):
        return ""
    run = a + b
    if len(run) < MIN_JOINED_CHARS:
        return ""
    if run in words:
        return run
    return sounds.get(sound_of(run), "") if a not in words and b not in words and len(run) >= MIN_SOUND_CHARS else ""


@lru_cache(maxsize=256)
def _vocabulary(intents: tuple[Intent, ...]) -> tuple[frozenset[str], dict[str, str]]:
    """The Latin words of the answers' phrases and examples, and the longer ones by their sound (the first word
    met keeps a sound that two words share)."""
    words = frozenset(w for i in intents for p in (*i.phrases, *i.examples) for w in p.split()
                      if w.isascii() and w.isalpha())
    sounds: dict[str, str] = {}
    for w in sorted(words):
        if len(w) >= MIN_JOINED_CHARS:
            sounds.setdefault(sound_of(w), w)
    return words, sounds
