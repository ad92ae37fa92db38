"""Mandarin words the recognizer wrote with other characters of the same sound, put right before matching: 发漂 and
发飘 for 发票 (invoice).

Whisper writes Mandarin by sound, and a character that sounds the same (the same toneless pinyin) is its commonest
error. The sound-alike matcher hears such a word by its pinyin already, but the sentence embedding sees a non-word:
我的发漂有问题 was nearer to "where is my order" than to billing.

The sentence is read left to right taking the longest word at each place (a word of the Mandarin lexicon that
snownlp ships, ~53,000 words, or a run common in the answers' phrases and examples). Where the word is shorter than
three characters, the pair of characters there is written as the word of the answers' vocabulary it sounds like
(their phrases and written examples: not what callers were heard saying, builtins.heard_sentences, which keeps the
recognizer's errors),
when that word is in at least MIN_SEEN of their phrases and examples and DOMINANCE times as many as the pair as said
and as each character it changes (漂 in 发漂; not 剩 in 剩几, "how many left", which sounds like 升级, "upgrade": the
answers say 剩 more often than 升级), and is a word of the lexicon or in MIN_SEEN_UNLISTED of them (充值 and 客服 are
newer than the lexicon). The pair as said may be a word too (发飘, "to feel floaty", is in the lexicon). A longer word
(电视机) is kept, no pair holding a function character (FUNCTION) is touched, and a pair across two longer words is
not guessed at. Before that, a run said like one of the answers' own phrases (their `say:`, not their examples: a
character's every reading counts, 重 is zhong and chong) is written as the phrase when the run is no word of the
lexicon, changes no function character and takes no character from a word its neighbour makes with it (送外卖流量 keeps
外卖): 冲值, 冲流量, 重话费 are 充值, 充流量, 充话费 (the written examples keep a
recognizer's 冲 a few times, which held the pair rule back). Pure; the lexicon is read once (without snownlp
nothing changes) and the vocabulary is cached per set of answers.
"""

import os
from collections import Counter
from functools import lru_cache

from pypinyin import Style, lazy_pinyin, pinyin

from ivr.flow import builtins
from ivr.flow.nlu import WIDE, Intent, is_wide_char, sound_of

LONGEST = 4             # the longest word looked for at a place, in characters
MIN_PHRASE_CHARS = 2    # an answer's phrase this long at least is heard as a whole run said like it (_as_phrases)
MIN_SEEN = 2            # a replacement is in at least this many of the answers' phrases and examples ...
DOMINANCE = 5           # ... this many times as many as the pair said, and as each character it changes ...
MIN_SEEN_UNLISTED = 10  # ... and a word of the lexicon, or in this many of them
# Function characters: a pair holding one is not respelled nor a respelling (要补一张 is not 要不一张, 几时会到 not
# 几时回到, 贼晚了 not 贼完了): a negation, a particle or a pronoun carries the sentence's grammar, not its topic.
FUNCTION = frozenset("不没别未无非的地得了着过是在有一我你他她它们这那哪吗呢吧啊呀哦嘛么"
                     "会要想就也都还很太和跟给把被让从对")


def fix(text: str, intents: tuple[Intent, ...]) -> str:
    """`text` with each pair of characters that sounds like a word of the answers written as that word; unchanged
    when there is none."""
    if not WIDE.search(text):
        return text
    seen, by_sound = _vocabulary(intents)
    lexicon = _lexicon()
    if not seen or not lexicon:
        return text
    text = _as_phrases(text, intents, lexicon)
    out, i = [], 0
    while i < len(text):
        n = _word_at(text, i, seen, lexicon)
        pair = text[i:i + 2]
        if n <= 2 and len(pair) == 2 and all(is_wide_char(ch) and ch not in FUNCTION for ch in pair):
            word = by_sound.get(tuple(lazy_pinyin(pair)))
            changed = (a for a, b in zip(pair, word or pair, strict=True) if a != b)
            if word and word != pair and all(seen.get(said, 0) * DOMINANCE <= seen[word] for said in (pair, *changed)):
                out.append(word)
                i += 2
                continue
        out.append(text[i:i + n])
        i += n
    return "".join(out)


def _as_phrases(text: str, intents: tuple[Intent, ...], lexicon: frozenset[str]) -> str:
    """`text` with each run that sounds like one of the answers' phrases (of MIN_PHRASE_CHARS .. LONGEST characters;
    a character's every reading counts: 重 is zhong and chong) written as the phrase, when the run as said is no word
    of the lexicon and no character it changes is a function character: 冲值, 冲流量 and 重话费 are 充值, 充流量 and
    充话费 (the answers write 充 dozens of times, but also keep a recognizer's 冲 in a few examples, so the pair rule
    below does not dare)."""
    phrases = _phrases(intents)
    if not phrases:
        return text
    out, i = [], 0
    while i < len(text):
        found = next((p for p in _starting(text[i], phrases) if _sounds_as(text[i:i + len(p)], p, lexicon)
                      and not _splits_word(text, i, p, lexicon)), None)
        out.append(found or text[i])
        i += len(found) if found else 1
    return "".join(out)


def _splits_word(text: str, at: int, phrase: str, lexicon: frozenset[str]) -> bool:
    """Whether writing `phrase` over text[at:at + len(phrase)] changes a character that makes a word of the lexicon
    with its neighbour outside the run, that neighbour no function character: 送外卖流量 holds 外卖 (takeaway), not
    买流量 (buy data); 我要冲值 is 充值 (要 is a function character)."""
    end = at + len(phrase)
    left = at > 0 and text[at] != phrase[0] and text[at - 1] not in FUNCTION and text[at - 1:at + 1] in lexicon
    right = end < len(text) and text[end - 1] != phrase[-1] and text[end] not in FUNCTION \
        and text[end - 1:end + 1] in lexicon
    return left or right


def _sounds_as(run: str, phrase: str, lexicon: frozenset[str]) -> bool:
    """Whether `run` is said like `phrase` (each character the same, or another not a function character with the
    phrase character's sound among its readings) without being it, and is no word of the lexicon."""
    return len(run) == len(phrase) and run != phrase and run not in lexicon and all(
        a == b or (is_wide_char(a) and a not in FUNCTION and sound_of(b) in _readings(a))
        for a, b in zip(run, phrase, strict=True))


@lru_cache(maxsize=256)
def _phrases(intents: tuple[Intent, ...]) -> dict[str, list[str]]:
    """The answers' own phrases (not their examples) of MIN_PHRASE_CHARS .. LONGEST Chinese characters, longest first,
    by the sound of their first character."""
    said = sorted({p for i in intents for p in i.phrases
                   if MIN_PHRASE_CHARS <= len(p) <= LONGEST and all(is_wide_char(ch) for ch in p)},
                  key=len, reverse=True)
    by_sound: dict[str, list[str]] = {}
    for p in said:
        by_sound.setdefault(sound_of(p[0]), []).append(p)
    return by_sound


def _starting(ch: str, phrases: dict[str, list[str]]) -> list[str]:
    """The phrases (`_phrases`) a character may start, longest first: those whose first sound is one of its readings."""
    return sorted({p for r in _readings(ch) for p in phrases.get(r, ())}, key=len, reverse=True)


@lru_cache(maxsize=8192)
def _readings(ch: str) -> frozenset[str]:
    """Every toneless pinyin reading of a Chinese character (重: zhong, chong, tong); empty for anything else."""
    if not is_wide_char(ch):
        return frozenset()
    return frozenset(pinyin(ch, style=Style.NORMAL, heteronym=True)[0])


def prepare(intents: tuple[Intent, ...]) -> None:
    """Read the lexicon and these answers' vocabulary and phrases now (when a flow loads), not on a caller's turn."""
    _vocabulary(intents)
    _phrases(intents)


def _word_at(text: str, i: int, seen: dict[str, int], lexicon: frozenset[str]) -> int:
    """The length of the longest word (of the lexicon, or common in the answers) starting at `i`; 1 when none."""
    for n in range(LONGEST, 1, -1):
        run = text[i:i + n]
        if len(run) == n and all(is_wide_char(ch) for ch in run) and (
                run in lexicon or seen.get(run, 0) >= MIN_SEEN_UNLISTED):
            return n
    return 1


@lru_cache(maxsize=1)
def _lexicon() -> frozenset[str]:
    """The words of two characters or more in snownlp's Mandarin lexicon (its pinyin table); empty without it."""
    try:
        import snownlp.normal
    except ImportError:
        return frozenset()
    path = os.path.join(os.path.dirname(snownlp.normal.__file__), "pinyin.txt")
    try:
        with open(path, encoding="utf-8") as f:
            return frozenset(w for w in (line.split(" ", 1)[0] for line in f) if len(w) >= 2)
    except OSError:
        return frozenset()


@lru_cache(maxsize=256)
def _vocabulary(intents: tuple[Intent, ...]) -> tuple[dict[str, int], dict[tuple[str, ...], str]]:
    """How many of the answers' phrases and examples hold each run of 1..LONGEST characters, and per sound the
    commonest pair that may replace another (MIN_SEEN; a word of the lexicon or MIN_SEEN_UNLISTED)."""
    counts: Counter[str] = Counter()
    heard = builtins.heard_sentences("zh")     # callers' sentences as heard: 发漂 is their error, not the answers' word
    for i in intents:
        for p in (*i.phrases, *(e for e in i.examples if e not in heard)):
            runs = {p[a:a + n] for n in range(1, LONGEST + 1) for a in range(len(p) - n + 1)}
            counts.update(r for r in runs if all(is_wide_char(ch) for ch in r))
    lexicon = _lexicon()
    by_sound: dict[tuple[str, ...], str] = {}
    for run, count in counts.most_common():
        if count < MIN_SEEN:
            break
        if len(run) == 2 and not set(run) & FUNCTION and (run in lexicon or count >= MIN_SEEN_UNLISTED):
            by_sound.setdefault(tuple(lazy_pinyin(run)), run)
    return dict(counts), by_sound
