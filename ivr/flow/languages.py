"""One flow, several languages: `{en: ..., zh: ...}` maps in a flow file, and the `language:` step.

A flow declares `languages: [en-US, zh-CN]` (the first is the default). The loader builds the
flow once per language (`Flow.variants`): every `{en: ..., zh: ...}` map is resolved to that
language's value, so each variant is an ordinary single-language flow (prompts, phrases, slot
parsing, FAQ, default texts, holiday names). The call's language lives in `state.call["language"]`;
the interpreter hands each event to the variant of that language.

The `language:` step offers the languages ("For English press 1, 普通话请按2", each part in its own
voice) and takes a key, or the first words the caller says: a word naming a language ("English",
"普通话", "Mandarin"), else the script of the recognised text (Chinese characters -> zh, Hangul ->
ko, Latin letters -> en). A call that already has its language (`Interpreter(flow, language=...)`,
e.g. a number routed to one language) passes the step without asking.
"""

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from ivr import lang
from ivr.events import Digits, Heard, Listen, NoInput, Play
from ivr.flow.foreign import CJK as _CJK
from ivr.flow.model import LanguageOption, Step
from ivr.flow.patterns import normalize
from ivr.flow.state import CallState, Understood, context
from ivr.flow.yamlsrc import LineDict

if TYPE_CHECKING:
    from ivr.flow.interpreter import Interpreter, Result

OPTION_KEYS = {"say", "dtmf", "words"}
DEFAULT_OPTION = {   # what a `language: [en-US, zh-CN]` list says and hears per language
    "en": ("For English, press {key}.", ("english", "in english", "英语", "英文")),
    "zh": ("普通话请按{key}。", ("普通话", "中文", "汉语", "国语", "说中文", "mandarin", "chinese", "putonghua")),
    "ko": ("한국어는 {key}번을 누르세요.", ("한국어", "korean")),
}
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_LATIN = re.compile(r"[A-Za-z]")


def script_language(text: str) -> str | None:
    """The base language the script of `text` points to: Hangul -> ko, Chinese characters -> zh,
    Latin letters -> en; None for no letters. A first cut that needs no model: a multilingual
    recognizer writes Mandarin in characters and English in Latin letters."""
    if _HANGUL.search(text):
        return "ko"
    if _CJK.search(text):
        return "zh"
    return "en" if _LATIN.search(text) else None


def is_language_map(value) -> bool:
    """A mapping whose keys all read as languages (`en`, `zh-CN`, `cmn`)."""
    if not isinstance(value, dict) or not value:
        return False
    try:
        for key in value:
            lang.parse_language(str(key))
    except lang.UnknownLanguage:
        return False
    return True


def localized(builder, where, key, value=None):
    """`where[key]` in the builder's language. A `{en: ..., zh: ...}` map gives that language's
    entry; a map missing one of the flow's languages, or naming one it does not declare, is a
    problem at its line. Anything else is returned as it is (the same text for every language)."""
    value = where[key] if value is None else value
    if not isinstance(value, dict):
        return value
    bases = {lang.base_language(t): t for t in builder.languages}
    found, seen = None, set()
    for k, v in value.items():
        try:
            base = lang.parse_language(str(k)).base
        except lang.UnknownLanguage:
            base = None
        if base not in bases:
            builder.p.error(value, k, f"unknown language key '{k}' in '{key}'",
                            "the flow's languages are " + ", ".join(builder.languages)
                            + " (declare more with languages: [en-US, zh-CN])")
            continue
        seen.add(base)
        if base == lang.base_language(builder.language):
            found = v
    for base, tag in bases.items():
        if base not in seen:
            builder.p.error(where, key, f"'{key}' has no text for {tag}, one of the flow's languages",
                            f"add {base}: ... to the map")
    return found


def check_plain(builder, where, key) -> None:
    """In a flow with several languages, a plain prompt is said as it is in every language: warn."""
    raw = where[key]
    texts = raw if isinstance(raw, list) else [raw]
    if len(builder.languages) > 1 and any(isinstance(t, str) and re.search(
            r"[^\W\d_]", re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", t)) for t in texts):
        builder.p.warn(where, key, f"'{key}' has one text for all of the flow's languages "
                       f"({', '.join(builder.languages)})", "write a map like {en: \"...\", zh: \"...\"}")


def build_menu(builder, spec: LineDict) -> tuple[LanguageOption, ...]:
    """`language: [en-US, zh-CN]` (default texts, keys 1, 2, ...) or
    `language: {en: {say: ..., dtmf: "1", words: [...]}, zh: {...}}`."""
    data = spec["language"]
    if isinstance(data, list):
        items = [(t, None) for t in data]
    elif isinstance(data, dict):
        items = list(data.items())
    else:
        builder.p.error(spec, "language", "'language' must list the languages offered, or map each to "
                        "{say, dtmf, words}", 'e.g. language: [en-US, zh-CN]')
        return ()
    declared = {lang.base_language(t): t for t in builder.languages}
    out: list[LanguageOption] = []
    for i, (raw, option) in enumerate(items, start=1):
        try:
            parsed = lang.parse_language(str(raw))
        except lang.UnknownLanguage as exc:
            builder.p.error(data, raw if isinstance(data, dict) else i - 1, exc.message, exc.hint)
            continue
        if parsed.base not in declared:
            builder.p.error(data, raw if isinstance(data, dict) else i - 1,
                            f"the flow does not speak {raw}", "add it to the flow's languages: [...]")
            continue
        option = option if isinstance(option, dict) else {}
        if isinstance(option, LineDict):
            builder.p.check_keys(option, OPTION_KEYS, f"language option '{raw}'")
        text, words = DEFAULT_OPTION.get(parsed.base, ("{key}", ()))
        dtmf = str(option.get("dtmf", i if i <= 9 else ""))
        say = option.get("say", text.format(key=dtmf))
        where = option if "say" in option else spec
        template = builder.template(where, "say" if "say" in option else "language", say) \
            if isinstance(say, str) else None
        if template is None:
            continue
        heard = option.get("words", words)
        heard = [heard] if isinstance(heard, str) else heard
        out.append(LanguageOption(declared[parsed.base], template, dtmf,
                                  tuple(dict.fromkeys(normalize(str(w)) for w in heard if normalize(str(w))))))
    if len(builder.languages) < 2:
        builder.p.error(spec, "language", "a language step needs a flow with several languages",
                        "declare them at the top: languages: [en-US, zh-CN]")
    return tuple(out)


# ---- at run time (part of the pure interpreter) -------------------------------------------


def enter(it: "Interpreter", state: CallState, step: Step, actions: list) -> "Result":
    """Offer the languages (each part in its own voice), then listen for a key or the first words."""
    ctx = context(it.flow, state)
    plays = tuple(Play(o.say.render(ctx), language=o.tag) for o in step.language_menu)
    listen = menu_listen(it, step)
    return replace(state, step=step.name, last_prompts=plays), [*actions, *plays, listen]


def menu_listen(it: "Interpreter", step: Step) -> Listen:
    """No phrase hints: given the languages' names as a prompt, whisper wrote "英文" or "in english"
    for Mandarin requests (scripts/bench_language_menu.py)."""
    return Listen(step.name, (), dtmf=True, max_digits=1, no_input_ms=step.no_input_ms,
                  language=it.flow.language, languages=tuple(o.tag for o in step.language_menu))


def chosen(state: CallState) -> bool:
    return bool(state.call.get("language_chosen"))


def handle(it: "Interpreter", state: CallState, step: Step, event) -> "Result":
    option = None
    if isinstance(event, Digits):
        option = next((o for o in step.language_menu if o.dtmf and o.dtmf == event.digits), None)
        kind, value = "dtmf", event.digits
    elif isinstance(event, Heard):
        option = pick_by_words(step.language_menu, event.text)
        kind, value = "speech", event.text
    elif isinstance(event, NoInput):
        kind, value = "no_input", ""
    else:
        return state, []
    if option is not None:
        return switch(it, replace(state, last=Understood(kind, value, option.tag, 1.0, "language")), step, option.tag)
    state = replace(state, last=Understood(kind, value, None, 0.0, "language"))
    if kind == "no_input":
        state = replace(state, no_input_count=state.no_input_count + 1)
    else:
        state = replace(state, no_match_count=state.no_match_count + 1)
    if state.attempts >= step.max_attempts:   # nobody chose: go on in the flow's default language
        return switch(it, state, step, it.flow.languages[0] if it.flow.languages else it.flow.language)
    return state, [*state.last_prompts, menu_listen(it, step)]


def pick_by_words(options: tuple[LanguageOption, ...], text: str) -> LanguageOption | None:
    """A word naming a language wins; else the script of what was recognised."""
    said = f" {normalize(text)} "
    for option in options:
        if any(f" {w} " in said or (_CJK.search(w) and w in said) for w in option.words):
            return option
    base = script_language(text)
    return next((o for o in options if lang.base_language(o.tag) == base), None)


def switch(it: "Interpreter", state: CallState, step: Step, tag: str) -> "Result":
    """The call goes on in `tag`: its variant's prompts, phrases, slots, FAQ, voice and holiday name."""
    state = replace(state, call={**state.call, "language": tag, "language_chosen": True})
    speaker = it.speaking(state)
    now, hours = state.clock.get("now"), speaker.flow.hours
    if now is not None and hours is not None:   # each language's hours and holiday names (its agents')
        status = hours.status(now)
        state = replace(state, clock={"now": status.local, "open": status.open, "holiday": status.holiday})
    return speaker.enter(state, speaker.route(state, step))
