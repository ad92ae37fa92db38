"""Sentence templates, as operations staff write them: `(track|trace) [my] order`.

`(a|b)` is a choice, `[x]` is optional, and they nest. A template expands to the plain
phrases it stands for; those phrases feed the matcher, the recognizer's phrase list and
grammar-aware endpointing.
"""

import re
import unicodedata

MAX_EXPANSIONS = 512

# Han, Hiragana/Katakana, Hangul: scripts written without spaces between words.
_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])")
_PUNCT = re.compile(r"[^\w\s']+", re.UNICODE)


class TemplateError(ValueError):
    """A template that does not parse; the message says where."""


def normalize(text: str) -> str:
    """Lower-case, drop punctuation, one space between words, NFKC (full-width to ASCII)."""
    # NFKC leaves the typographic apostrophe alone: "that’s" must read like "that's".
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    text = _PUNCT.sub(" ", text).replace("'", "")
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    """Words of normalised text; each CJK character counts as a token of its own."""
    return _CJK.sub(r" \1 ", normalize(text)).split()


def expand(template: str) -> list[str]:
    """All normalised phrases a template stands for, in order, without duplicates."""
    _check_question_marks(template)
    parser = _Parser(template)
    alternatives = parser.parse_sequence(top=True)
    phrases = [" ".join(p.split()) for p in alternatives]
    return list(dict.fromkeys(normalize(p) for p in phrases if p.strip()))


def _check_question_marks(template: str) -> None:
    """A `?` may end a question ("where is my (order|package)?"); anywhere else it is a regular-expression
    habit (`(my)? order`, `colou?r`, `[please]?`) that would silently not match as meant: refused."""
    text = unicodedata.normalize("NFKC", template).rstrip()
    body = text.rstrip("?").rstrip()
    at = body.find("?")
    if at < 0 and text.rstrip("?").endswith("]") and text.endswith("?"):   # `[please]?`: optional twice
        at = len(body)
    if at >= 0:
        raise TemplateError(f"'?' at column {at + 1} in {template!r}: sentence templates are not regular "
                            "expressions; write optional words in brackets, e.g. 'track [my] order'")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse_sequence(self, top: bool = False) -> list[str]:
        """A sequence of words and groups; returns its expansions."""
        results = [""]
        word = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in "([":
                results = _join(results, "".join(word))
                word = []
                self.pos += 1
                group = self.parse_group(")" if ch == "(" else "]")
                if ch == "[":
                    group = ["", *group]
                results = _join_all(results, group)
            elif ch in ")]|":
                if top:
                    raise TemplateError(f"unexpected '{ch}' at column {self.pos + 1} in {self.text!r}")
                break
            else:
                word.append(ch)
                self.pos += 1
        return _join(results, "".join(word))

    def parse_group(self, closer: str) -> list[str]:
        options: list[str] = []
        while True:
            options.extend(self.parse_sequence())
            if self.pos >= len(self.text):
                raise TemplateError(f"missing '{closer}' in {self.text!r}")
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "|":
                continue
            if ch != closer:
                raise TemplateError(f"'{ch}' closes a group opened with the other bracket in {self.text!r}")
            return options


def _join(prefixes: list[str], suffix: str) -> list[str]:
    return [p + suffix for p in prefixes]


def _join_all(prefixes: list[str], suffixes: list[str]) -> list[str]:
    if len(prefixes) * len(suffixes) > MAX_EXPANSIONS:
        raise TemplateError(f"template expands to more than {MAX_EXPANSIONS} phrases; split it")
    return [p + s for p in prefixes for s in suffixes]
