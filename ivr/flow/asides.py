"""A request followed by why the caller makes it: "say that again i'm on my lunch break", "pardon the bus was too
loud", "start over please i pressed the wrong thing", "agent please i've been waiting for ages".

Callers in a noisy place, interrupted, or who pressed the wrong key say so after the request. The reason is most of
the sentence, so the embedding of the whole sentence is about canteens, buses and kids, and the request's own words
cover too little of it to count (a global's words count in full only when they are half the sentence). `head`
finds where the reason starts (im, i was, i pressed, the line is, my kid was, its, because ...) and gives the
request before it; `apart` ranks that head too and takes a global answer it names with confidence when the whole
sentence named nothing with confidence. Only the globals repeat, agent and main menu: a step's own answer usually
lies in the reason ("cancel it i bought the wrong size"). In Mandarin the head is the first clause before the
recognizer's pause (你说什么 雨声太大了), or without a pause before a clause-final particle
(还是转人工吧我跟机器讲不清楚), not taken when what follows asks for a step's own answer. An apology before a long
story ("oh sorry i was actually trying to ring the letting agent about ...") is no request to repeat. Callers who say
why first and ask last ("i've been going round in circles for ten minutes just take me back to the main menu") are
heard the same way from the other end: `tails` gives the request after the reason (REQUEST_AFTER: "so", "just",
"can you" ...; in Mandarin a later clause that starts like a request, ZH_REQUEST_AFTER: 能不能, 帮我, 我想 ...), taken
when it names one of those globals with confidence, or at a menu one of the menu's own answers with confidence that
is nearest by meaning too ("... and i've used all my data looking up buses so can i add some more data to my phone
please"); a long sentence's embedding is about the story, the request's about what the caller wants. A sentence
that ends with a goodbye heard word for word after its reason ("i'll ring back after my shift bye") is taken at the
goodbye (`farewell_tails`). A pure function of the words.

The other way round, at a yes/no step: a "no" (or "never mind", 算了) followed by a request for a person, the main
menu, a repeat or goodbye ("no just get me an agent", 不用了 再见; in Mandarin also several in a row, 算了 不办了 拜拜)
answers the question and asks for something more.
`after_no` takes the request: the caller who turned the offer down and asked for a human would otherwise hear the
menu again.
"""

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import replace

from ivr.flow import slots
from ivr.flow.nlu import CONFIRM_THRESHOLD as CONFIRM
from ivr.flow.nlu import DEFAULT_THRESHOLD as ACCEPT
from ivr.flow.nlu import FILLERS, WIDE
from ivr.flow.patterns import normalize

# Words that start a reason (normalised: lower case, no apostrophes), and "the/my/a ... <one or two words> <verb>".
REASON_STARTS = tuple(tuple(r.split()) for r in (
    "im", "i am", "i was", "i wasnt", "ive", "i have been", "i got", "i pressed", "i hit", "i mixed", "i missed",
    "i picked", "i chose", "i made", "i messed", "i said", "i cant hear", "i couldnt hear", "i didnt hear", "its",
    "it is", "theres", "there is", "there was", "because", "cause", "cos", "youre breaking", "you broke",
    "you were breaking", "you cut", "ill", "i will", "this isnt", "this is not", "this doesnt", "this wont"))
REASON_DETERMINERS = frozenset({"the", "my", "a", "an", "our", "his", "her", "their"})   # "a tractor went past"
REASON_VERBS = frozenset({"is", "was", "are", "were", "isnt", "wasnt", "keeps", "kept", "cut", "broke", "dropped",
                          "went", "started"})
# "sorry i think ive rung the wrong number": after these the words are what the caller thinks, not why they ask
CLAUSE_VERBS = frozenset({"think", "guess", "believe", "suppose", "reckon", "hope", "know", "feel", "fear", "afraid",
                          "sure", "realise", "realize", "thought", "wonder", "wondering"})
MIN_HEAD_WORDS = 1
MAX_HEADS = 2               # the requests before the first two reasons are tried (each ranked again), or after
# Words a request starts with after the caller has said why ("... it's four in the morning so can you just put me
# through to a person", "... for ten minutes just take me back to the main menu"), after this many words at least
REQUEST_AFTER = tuple(tuple(r.split()) for r in (
    "so", "just", "can you", "could you", "can i", "could i", "please", "i want", "i need", "i just want"))
MIN_REASON_WORDS = 3
MIN_ZH_REASON_CHARS = 4     # a Mandarin reason before the request's clause is this long at least, and the clause
# starts like a request (我刚下夜班 网上买的东西说今天送到 能不能帮我查一下; not 我要退款 那件外套不想要了: a reason)
ZH_REQUEST_AFTER = ("帮我", "帮忙", "麻烦", "能", "可不可以", "可以", "你们", "请", "我想", "我要", "想", "给我",
                    "怎么")     # 能 starts 能不能 and 能否 too
PAST_FORMS = frozenset({"got", "been", "had", "came", "come", "gone", "went", "done", "found", "left", "bought",
                        "sent", "told", "said", "seen", "paid", "made", "taken", "given", "heard", "rung", "rang"})
MAX_FAREWELL_WORDS = 3      # a farewell that ends a sentence after its reason ("... after my shift bye"), this long
MAX_APOLOGY_REASON_WORDS = 12   # an apology ("sorry") and a reason longer than this tells a story, asks no repeat
MIN_ZH_HEAD_CHARS = 2       # a Mandarin first clause this long at least (not 嗯, 啊), ended by a pause or by one of
#                             slots.ZH_PARTICLE_END
GLOBALS = ("repeat", "agent", "main_menu")      # built-in intents (or global names) a reason may follow
# "sorry" before an aside is an apology (_apology_for_aside); the signals understand gives an aside (held, or under
# the cap and nearer an off-topic sentence: understand.NEARER_OFF_TOPIC; asides cannot import understand)
APOLOGIES = frozenset({"sorry", "soz", "apologies"})
APOLOGY_COMPANIONS = frozenset({"oh", "so", "very", "really", "im", "love", "mate", "darling", "dear", "pet", "hun"})
ASIDE_SIGNALS = ("off topic", "nearer an off-topic")


def head(text: str) -> str | None:
    """The words before the first reason in `text`, or None when there is none or nothing before it. Mandarin (any
    Chinese character): the first clause, when the recognizer's pause or punctuation ends it and it has two
    characters or more (你说啥 这边太吵了: the reason is in words of its own, not in the sentence's reason words)."""
    return next(heads(text), None)


def heads(text: str) -> Iterator[str]:
    """The words before each reason in `text`, first reason first (`head`): "hang on i think i pressed the wrong
    button ... can you take me back to the main menu and ill start over" asks after its first reason."""
    if WIDE.search(text):
        clauses = _zh_clauses(text)
        if len(clauses) >= 2 and len(clauses[0]) >= MIN_ZH_HEAD_CHARS:
            yield clauses[0]
        elif len(clauses) == 1:      # no pause: a clause-final particle ends it (还是转人工吧 我跟机器讲不清楚)
            end = slots.zh_particle_end(clauses[0], MIN_ZH_HEAD_CHARS - 1)
            if end is not None and len(clauses[0]) - end - 1 >= MIN_ZH_HEAD_CHARS:
                yield clauses[0][:end + 1]
        return
    words = _latin_words(text)
    if not words:
        return
    for i in range(MIN_HEAD_WORDS, len(words) - 1):
        if words[i - 1] in CLAUSE_VERBS:
            continue
        if any(tuple(words[i:i + len(r)]) == r for r in REASON_STARTS) or _noun_verb(words, i) or (
                words[i] == "i" and words[i + 1] in CLAUSE_VERBS and not _only_apology(words[:i])):
            said = words[:i]
            while len(said) > 1 and said[-1] in slots.EN_ADDRESS:
                said = said[:-1]     # "come again love": the name for the listener asks nothing
            yield " ".join(said)


def _zh_clauses(text: str) -> list[str]:
    """A Mandarin sentence's clauses, between the recognizer's pauses and punctuation (slots.ZH_CLAUSE)."""
    return [c for c in re.split(slots.ZH_CLAUSE, text.strip()) if c]


def _latin_words(text: str) -> list[str]:
    """`text`'s normalised words, or none when one of them is not in Latin letters (another script)."""
    words = normalize(text).split()
    return words if all(w.isascii() for w in words) else []


def _only_apology(words: list[str]) -> bool:
    """Whether `words` only apologise ("sorry", "oh sorry love"): "sorry i think ive rung the wrong number" goes on
    to say what the caller thinks; "start over i think i said the wrong thing" asks first, then says why."""
    return bool(set(words) & APOLOGIES) and set(words) <= APOLOGIES | APOLOGY_COMPANIONS | FILLERS


def _noun_verb(words: list[str], i: int) -> bool:
    """'the line is bad', 'my kid was yelling', 'my flight's boarding' (a recognizer's "flights boarding": 's is
    "is"): the/my/a (REASON_DETERMINERS), one or two words, a verb, and something after it."""
    return words[i] in REASON_DETERMINERS and any(
        i + k + 1 < len(words) and (words[i + k] in REASON_VERBS or (
            words[i + k].endswith("ing") and words[i + k - 1].endswith("s") and k == 2)) for k in (1, 2))


def apart(text: str, ranked: list, rank: Callable[[str], list], answers: frozenset[str],
          worded: frozenset[str] = frozenset(), polar: frozenset[str] = frozenset(),
          answered: Callable[[str], bool] = lambda _: True, own: frozenset[str] = frozenset()) -> list:
    """`ranked`, or the candidates of the request before the reason (`rank(head)`) when the whole sentence took
    nothing with confidence and the head takes one of `answers` (the globals that ask to repeat, for a person, for
    the main menu) with confidence, or one of `worded` (goodbye) heard word for word ("cheers bye now im off to the
    market"; not by its meaning: "hello good afternoon i am calling because ..." is a greeting, then the request);
    their signal says so. Also when the sentence was taken as one of `polar` (the step's yes and no) and the head
    holds no such answer (`answered`): the yes or no was in the reason (那回主菜单吧 搞错了: 错 "wrong" is why)."""
    if not (answers or worded) or (ranked and ranked[0].signal.startswith("off topic")):
        return ranked       # held as an aside ("not you i was talking to my husband")
    by_reason = bool(ranked) and ranked[0].score >= ACCEPT and ranked[0].name in polar
    if ranked and ranked[0].score >= ACCEPT and not by_reason:
        return ranked       # taken
    for said in itertools.islice(heads(text), MAX_HEADS):
        if (by_reason and answered(said)) or _apology_for_aside(said, ranked):
            return ranked
        if _apology_for_a_story(said, text):
            continue                 # the request may come after the story ("... can you say it again please")
        again = rank(said)
        if again and again[0].score >= ACCEPT and (
                again[0].name in answers or (again[0].name in worded and again[0].words >= 1.0)):
            break
    else:
        return ranked if by_reason else _after_reason(text, ranked, rank, answers, worded, own)
    if WIDE.search(said) and not by_reason:
        # a Mandarin first clause is cut at a pause, not at a reason's words: what follows may be the request itself
        # (我老伴买重复了 取消一个: 重复 is "twice" there, and 取消一个 asks to cancel)
        rest = rank(text[text.find(said) + len(said):])
        if rest and rest[0].group == "step" and rest[0].score >= CONFIRM:
            return ranked
    return [replace(c, signal=f"{c.signal}, before the reason '{said}'") for c in again]


def tails(text: str) -> Iterator[str]:
    """The words from each request said after a reason in `text` (REQUEST_AFTER, after MIN_REASON_WORDS words at
    least), first one first: "look im tired and its four in the morning so can you just put me through to a person"
    gives "so can you just put me through to a person". In Mandarin, each later clause (after the recognizer's pause)
    that starts like a request (ZH_REQUEST_AFTER) after MIN_ZH_REASON_CHARS characters at least, with all that follows
    it: 我刚下夜班 网上买的东西说今天送到 能不能帮我查一下 gives 能不能帮我查一下."""
    if WIDE.search(text):
        clauses = _zh_clauses(text)
        for k in range(1, len(clauses)):
            if len("".join(clauses[:k])) >= MIN_ZH_REASON_CHARS and clauses[k].startswith(ZH_REQUEST_AFTER):
                yield " ".join(clauses[k:])
        return
    words = _latin_words(text)
    i = MIN_REASON_WORDS
    while i < len(words):
        n = _request_after(words, i)
        if not n:
            i += 1
            continue
        yield " ".join(words[i:])
        while n:                     # "so can you just": one request, not four
            i += n
            n = _request_after(words, i)


def _request_after(words: list[str], i: int) -> int:
    """The length of the REQUEST_AFTER words starting at `i`, 0 when none does ("just" before a past form tells when:
    "weve just got back from my sisters")."""
    n = next((len(r) for r in REQUEST_AFTER if tuple(words[i:i + len(r)]) == r), 0)
    if n and words[i] == "just" and i + 1 < len(words) and (
            words[i + 1] in PAST_FORMS or words[i + 1].endswith("ed")):
        return 0
    return n


def _after_reason(text: str, ranked: list, rank: Callable[[str], list], answers: frozenset[str],
                  worded: frozenset[str] = frozenset(), own: frozenset[str] = frozenset()) -> list:
    """`ranked`, or the candidates of a request said after its reason (`tails`) when they take one of `answers` (the
    globals that ask to repeat, for a person, for the main menu) with confidence, or (the first such request only, all
    that follows the reason) one of `own` (a menu's own answers) with confidence and nearest by meaning too ("... so
    can i add some more data to my phone please"; 我刚从健身房出来 你们那个万达店今晚开到几点 我想过去买点东西 asks
    about the hours, not to buy: its second request took returns), or of the farewell that ends the sentence
    (`farewell_tails`) when it takes one of `worded` (goodbye) heard word for word: "ill ring back after my shift
    bye"; their signal says so."""
    for k, said in enumerate(itertools.islice(tails(text), MAX_HEADS)):
        again = rank(said)
        if again and again[0].score >= ACCEPT and (again[0].name in answers or (k == 0 and again[0].name in own and (
                again[0].meaning >= max((c.meaning for c in again[1:]), default=0.0)))):
            return [replace(c, signal=f"{c.signal}, after the reason: '{said}'") for c in again]
    # only when the whole sentence holds a goodbye's phrase word for word: the tails are not ranked (nor embedded) else
    for said in farewell_tails(text) if any(c.name in worded and c.words >= 1.0 for c in ranked) else ():
        again = rank(said)
        if again and again[0].score >= ACCEPT and again[0].name in worded and again[0].words >= 1.0:
            return [replace(c, signal=f"{c.signal}, after the reason: '{said}'") for c in again]
    return ranked


def farewell_tails(text: str) -> Iterator[str]:
    """The last one, two and up to MAX_FAREWELL_WORDS words of `text` when MIN_REASON_WORDS words at least come
    before them: "the babys up ill ring back later bye" ends with its request. English only."""
    if WIDE.search(text):
        return
    words = _latin_words(text)
    for n in range(1, min(MAX_FAREWELL_WORDS, len(words) - MIN_REASON_WORDS) + 1):
        yield " ".join(words[-n:])


def _apology_for_a_story(said: str, text: str) -> bool:
    """Whether the head `said` is only an apology and more than MAX_APOLOGY_REASON_WORDS follow it: "oh sorry i was
    actually trying to ring the letting agent about the deposit on the old flat ..." tells a story (a wrong number),
    where "sorry i was on the other line" asks to hear the prompt again."""
    return _only_apology(normalize(said).split()) and (
        len(normalize(text).split()) - len(normalize(said).split()) > MAX_APOLOGY_REASON_WORDS)


def _apology_for_aside(said: str, ranked: list) -> bool:
    """Whether the head `said` is only an apology ("sorry", "oh sorry love") and the whole sentence (`ranked`) is
    nearer an off-topic sentence than any answer: "sorry i was talking to my son" apologises for an aside and asks
    for nothing ("pardon me i was talking to my son" asks: "pardon" is a request, not an apology)."""
    return _only_apology(normalize(said).split()) and bool(ranked) and ranked[0].signal.startswith(ASIDE_SIGNALS)



# After "no", the words a request starts with ("no i want an agent", "no just put me through", "no bye"); not a noun
# the "no" may quantify ("no agent", "no need for a person": the caller may be saying they want none).
REQUEST_STARTS = frozenset({
    "i", "id", "ill", "im", "just", "can", "could", "would", "will", "please", "give", "get", "put", "take", "let",
    "lets", "transfer", "connect", "speak", "talk", "bye", "goodbye", "cheers", "thanks", "thank", "repeat", "say",
    "what", "start", "go", "back", "send", "pardon", "sorry", "forget", "leave", "ok", "okay", "actually", "rather"})
CORRECTING = (("sorry", "i", "meant"), ("sorry", "i", "mean"), ("i", "meant"), ("i", "mean"))   # after a "no"
EN_NEGATION = frozenset({"no", "not", "dont", "never", "nothing", "none", "without", "wont", "cant", "doesnt",
                         "didnt", "isnt", "arent", "wasnt", "couldnt", "wouldnt", "shouldnt", "havent", "hasnt",
                         "aint", "stop", "nobody", "neither", "nor"})
ZH_NEGATION = frozenset("不没别甭勿莫")
# 不用了再见: a "no" ends at a particle even without a pause, and at 了 or 的 too (不用了, 不是的), which a request
# or a yes runs on through (slots.ZH_PARTICLE_END: 买重复了 取消一个, 我的订单)
ZH_CLAUSE_END = slots.ZH_PARTICLE_END | frozenset("了的")
MAX_NO_WORDS, MAX_NO_CHARS = 3, 4
# Openings that wave the question away as a "no" does ("never mind i'll sort it later bye", 算了算了 再见哈)
EN_DISMISSALS = frozenset({"never mind", "nevermind", "forget it", "forget that", "leave it", "no matter"})
ZH_DISMISSALS = frozenset({"算了", "算了算了", "算啦", "拉倒", "拉倒吧", "罢了"})
# "(I) will not do it any more": 不办了, 不弄了, 我不买了, 我就不查了; after a dismissal or alone: a "no"
ZH_QUIT = re.compile(r"我?[就也]?不[^\W\d_不没别]{1,2}了")
MAX_ZH_NO_UNITS = 3          # 算了 不弄了: units of a Mandarin "no" head, each a dismissal, a whole no or a ZH_QUIT,
MAX_NO_UNIT_CHARS = 6        # ... and each this long at most


def no_then(text: str, lang: str) -> tuple[str, str] | None:
    """(the "no", the request after it) when `text` opens with a whole "no" answer or a dismissal (slots.whole_answer,
    EN_DISMISSALS, ZH_DISMISSALS; the longest such opening; in Mandarin one that ends at a pause or a particle:
    不用了再见, not 不要转人工; or a run of them holding a 不X了, _zh_quit_then) followed by a request
    without a negation in it (at least two words, or two characters, starting like a request in English); else None.
    English and Mandarin only."""
    if lang == "zh":
        runs = re.findall(r"[^\W_]+", text)          # the characters between pauses (spaces, punctuation)
        clean, pauses = "".join(runs), set(itertools.accumulate(len(r) for r in runs))
        heads = [(clean[:n], clean[n:]) for n in range(1, min(MAX_NO_CHARS, len(clean) - 2) + 1)
                 if (n in pauses or clean[n - 1] in ZH_CLAUSE_END) and _zh_unnegated(clean[n:])
                 and (clean[:n] in ZH_DISMISSALS or slots.whole_answer(clean[:n], "zh", leading=False) == "no")]
        return heads[-1] if heads else _zh_quit_then(clean, pauses)
    if lang != "en":
        return None
    words = normalize(text).split()
    while words and words[0] in FILLERS:
        words = words[1:]               # "ah forget it ill ring back bye"
    for n in range(min(MAX_NO_WORDS, len(words) - 2), 0, -1):
        head, tail = words[:n], words[n:]
        if " ".join(head) not in EN_DISMISSALS and slots.whole_answer(" ".join(head), "en", leading=False) != "no":
            continue
        if tail[0] in REQUEST_STARTS and not set(tail) & EN_NEGATION:
            return " ".join(head), " ".join(tail)
        return None
    return None


def _zh_unnegated(tail: str) -> bool:
    """Whether a Mandarin request holds no negation (a verb's potential complement, 转不动, is none: slots)."""
    return not set(slots.ZH_POTENTIAL.sub("", tail)) & ZH_NEGATION


def _zh_quit_then(clean: str, pauses: set[int]) -> tuple[str, str] | None:
    """(the "no", the request) when `clean` opens with up to MAX_ZH_NO_UNITS units, each ending at a pause or a
    particle, each a dismissal, a whole "no" or a ZH_QUIT, at least one of them a ZH_QUIT (算了 不办了 拜拜, 不弄了
    先挂了 再见), followed by a request of two characters or more without a negation; the longest such opening."""
    start, units, quit_, best = 0, 0, False, None
    for n in range(1, len(clean) - 1):
        if not (n in pauses or clean[n - 1] in ZH_CLAUSE_END):
            continue
        unit = clean[start:n]
        if ZH_QUIT.fullmatch(unit):
            quit_ = True
        elif unit not in ZH_DISMISSALS and slots.whole_answer(unit, "zh", leading=False) != "no":
            if len(unit) > MAX_NO_UNIT_CHARS:
                break
            continue            # the unit may end at a later pause or particle (我不弄了: 了 once, at its end)
        start, units = n, units + 1
        if quit_ and _zh_unnegated(clean[n:]):
            best = (clean[:n], clean[n:])
        if units == MAX_ZH_NO_UNITS:
            break
    return best


def after_no(text: str, lang: str, ranked: list, rank: Callable[[str], list], no: str | None,
             answers: frozenset[str]) -> list:
    """`ranked`, or the candidates of the request after a "no" or a dismissal (`rank(tail)`) when the sentence was
    taken as the step's `no`, or as nothing, and the request alone takes one of `answers` (the globals) with confidence
    or names it word for word; their signal says so."""
    if not answers or not ranked or (ranked[0].name != no and ranked[0].score >= ACCEPT):
        return ranked       # taken, and not as the no
    if slots.whole_answer(text, lang, leading=False) is not None:
        return ranked       # nothing but an answer: "no thank you love" asks for no goodbye
    split = no_then(text, lang)
    if split is None:
        return ranked
    said, tail = split
    words = tail.split()
    for marker in CORRECTING:        # "no sorry i meant something different": what follows the marker is the request
        if tuple(words[:len(marker)]) == marker:      # (no_then's words are normalised: no apostrophes)
            tail = " ".join(words[len(marker):])
            break
    again = rank(tail) if tail else []
    if not again:
        return ranked
    if again[0].name in answers and (again[0].score >= ACCEPT or again[0].words >= 1.0):
        pick = again[0]
    elif again[0].score < CONFIRM:     # nothing near: a global heard word for word ("ill ring back bye")
        pick = next((c for c in again if c.name in answers and c.words >= 1.0), None)
    else:
        pick = None
    if pick is None:
        return ranked
    # the request heard word for word ("i want an agent": a global's word is too little of the sentence for the
    # model, which weighs a global's words only when they are most of it): taken, at the flow's accept score
    top = replace(pick, score=max(pick.score, ACCEPT))
    rest = (c for c in again if c is not pick)
    return [replace(c, signal=f"{c.signal}, after the no '{said}'") for c in (top, *rest)]
