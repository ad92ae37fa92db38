"""Words the recognizer split in two, joined again before matching: "re turn", "cred it", "opera tor", "par sell".

Speech recognizers (and callers who pause inside a word) give a long word as two short ones. Neither half means
much to the sound-alike matcher or to the sentence embedding, so "i want to make a re turn" scored below the
"did you mean" band. Here two neighbouring words are replaced by a word of the offered answers' own vocabulary
(their phrases and examples) when, run together, they are that word and one half is not a word of that vocabulary
("my order" stays two words), or sound like it (the same metaphone: "par sell" / "parcel") and neither half is one.
An example that keeps a recognizer's split ("re peat that for me") makes no words of its halves, and a half that
joins the word after it as well as the word before goes with the one after when neither of that pair is a word
("could you re peat": "repeat", not "youre"). Latin script only: a Mandarin sentence has no spaces to split at.
Pure, and cached per set of answers.
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
            if found and i + 2 < len(said) and keys[i] in words and not {keys[i + 1], keys[i + 2]} & words and (
                    _joined(keys[i + 1], keys[i + 2], words, sounds)):
                found = ""          # "you re peat": "re" belongs with "peat", neither of them a word, not with "you"
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
    said = [[w for w in p.split() if w.isascii() and w.isalpha()] for i in intents for p in (*i.phrases, *i.examples)]
    every = frozenset(w for ws in said for w in ws)
    # an example that keeps a recognizer's split ("re peat that for me") does not make its halves words of their own
    words = frozenset(w for ws in said for k, w in enumerate(ws) if not _split_half(ws, k, every))
    sounds: dict[str, str] = {}
    for w in sorted(words):
        if len(w) >= MIN_JOINED_CHARS:
            sounds.setdefault(sound_of(w), w)
    return words, sounds


def _split_half(ws: list[str], k: int, words: frozenset[str]) -> bool:
    """Whether `ws[k]` and a neighbour run together are a word of `words` at least MIN_JOINED_CHARS long ("re peat")."""
    runs = (ws[j] + ws[j + 1] for j in (k - 1, k) if j >= 0 and j + 1 < len(ws))
    return any(len(run) >= MIN_JOINED_CHARS and run in words for run in runs)
