"""One place that reads a language tag: flows, slots, prompts, say-as, TTS and ASR all ask here.

Any accepted spelling maps to a canonical BCP-47 tag and a base language:

    en, en-US, en_us, english        -> en-US / en      en-GB, en_GB -> en-GB / en
    zh, zh-CN, zh_CN, zh-Hans, cmn,  -> zh-CN / zh      zh-TW, zh-Hant, cmn-Hant-TW -> zh-TW / zh
    cmn-Hans-CN, mandarin, chinese
    ko, ko-KR, kor, korean           -> ko-KR / ko

POSIX locale suffixes (`zh_CN.UTF-8`, `en_US@euro`) are dropped; case does not matter. A
language the product cannot serve (no prompts, recognizer or voice for it) is refused with
`UnknownLanguage`, whose hint lists what is accepted; the flow loader turns that into a
file:line:col problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ivr.errors import UserError

# base language -> (names and codes that mean it, default region)
_BASES: dict[str, tuple[tuple[str, ...], str]] = {
    "en": (("en", "eng", "english"), "US"),
    "zh": (("zh", "zho", "chi", "cmn", "mandarin", "chinese", "putonghua"), "CN"),
    "ko": (("ko", "kor", "korean"), "KR"),
}
_ALIASES = {alias: base for base, (aliases, _) in _BASES.items() for alias in aliases}
_SCRIPT_REGION = {("zh", "hans"): "CN", ("zh", "hant"): "TW"}   # a script alone implies a region
ACCEPTED = ("en", "en-US", "en-GB", "zh", "zh-CN", "zh-TW", "zh-Hans", "cmn", "ko", "ko-KR")
DEFAULT = "en-US"


class UnknownLanguage(UserError, ValueError):
    """A language tag the product does not serve (or cannot read)."""


@dataclass(frozen=True, slots=True)
class Language:
    tag: str        # canonical BCP-47: "zh-CN"
    base: str       # "zh"
    region: str     # "CN"

    def __str__(self) -> str:
        return self.tag


def _subtags(value: str) -> list[str]:
    text = re.split(r"[.@]", str(value).strip(), maxsplit=1)[0]       # zh_CN.UTF-8, en_US@euro
    return [p for p in re.split(r"[-_\s]+", text) if p]


def parse_language(value: str | None) -> Language:
    """The canonical language of `value` (None or "" -> en-US); UnknownLanguage when not served."""
    parts = _subtags(value) if value is not None else []
    if not parts:
        if value is None or not str(value).strip():
            return parse_language(DEFAULT)
        raise UnknownLanguage(f"cannot read language {value!r}", hint())
    base = _ALIASES.get(parts[0].lower())
    if base is None:
        raise UnknownLanguage(f"unknown language {value!r}", hint())
    script = region = ""
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha() and not script and not region:
            script = part.lower()
        elif ((len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit())) and not region:
            region = part.upper()
    region = region or _SCRIPT_REGION.get((base, script)) or _BASES[base][1]
    return Language(f"{base}-{region}", base, region)


def canonical(value: str | None) -> str:
    """"cmn" -> "zh-CN", "en_gb" -> "en-GB"; UnknownLanguage when not served."""
    return parse_language(value).tag


def canonical_or_raw(value: str) -> str:
    """For tools that serve any language an engine has (`ivr transcribe` with a German vosk model):
    the canonical tag when this module knows the language, else `value` as given."""
    try:
        return canonical(value)
    except UnknownLanguage:
        return value


def base_language(value: str | None, default: str = "en") -> str:
    """"zh_CN", "cmn-Hans-CN" -> "zh". For code that only needs the base and must not fail on a
    tag that was checked elsewhere (or never: a CLI's free-form --language): `default` then."""
    try:
        return parse_language(value).base
    except UnknownLanguage:
        return default


def is_mandarin(value: str | None) -> bool:
    return base_language(value, "") == "zh"


def is_english(value: str | None) -> bool:
    return base_language(value, "") == "en"


def hint() -> str:
    return "accepted languages: " + ", ".join(ACCEPTED) + " (and the same with '_' or in any case)"
