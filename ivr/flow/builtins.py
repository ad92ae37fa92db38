"""Built-in system intents: the ways callers say yes, no, agent, repeat, goodbye, main menu and help.

A flow's choice or global names one with `builtin: agent`: it then hears that intent's curated,
domain-independent sentences (`ivr/flow/builtin/<language>.yaml`, English and Mandarin) as `examples:`
(matched by meaning), and its `not:` sentences, besides its own; a choice without `say:` also takes the
built-in short phrases (matched word for word and through recognition errors). The operations person
writes four templates for "agent"; callers say "can i speak to an actual person" and "转人工" in sixty
ways, the same on every hotline: Amazon Lex's AMAZON.YesIntent and Dialogflow's system entities do the
same job.

The intent library (`ivr/flow/builtin/library/<domain>.<language>.yaml`) adds prebuilt customer-service
intents per business domain, named `domain.intent` (`builtin: retail.track_order`, `telecom.top_up`,
`banking.lost_card`): a menu choice tagged with one hears several dozen ways callers ask for it, as Lex's
and Dialogflow's prebuilt agents do. Its sentences are written in each domain's own words, so only a step's
own choices are tagged with them; the system intents above are the ones for globals.

What callers were heard saying (`library/heard/<domain>.<language>.yaml`) adds, to a library intent's examples,
the sentences independent writers wrote as callers of a shop's and a mobile operator's hotline (the evaluation
set's read parts, gathered by scripts/gather_heard.py), filed by the part they came from: real wording from
twenty-eight writers teaches the meaning signal more than one writer's list (with fifteen, leave-one-part-out:
right at once +3.2 points in English, +4.2 in Mandarin; docs/BENCHMARKS.md). `library(language,
leave_out=(PART,))` leaves a part's sentences out, so a benchmark can judge a part on wording the library did not
hear from it.

The data is read once per language and checked: a broken file is a packaging fault, raised as such.
"""

import functools
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ivr.errors import UserError
from ivr.flow.nlu import Intent
from ivr.flow.patterns import TemplateError, expand, normalize
from ivr.flow.yamlsrc import read_yaml

DATA_DIR = Path(__file__).resolve().parent / "builtin"
LIBRARY_DIR = DATA_DIR / "library"
HEARD_DIR = LIBRARY_DIR / "heard"
NAMES = ("yes", "no", "agent", "repeat", "goodbye", "main_menu", "help")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_KEYS = {"say", "examples", "not"}


class BuiltinDataError(RuntimeError):
    """A built-in intents file is missing a part or malformed: reinstall ivr."""


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    phrases: tuple[str, ...]    # the expanded `say:` templates
    examples: tuple[str, ...]   # normalised whole sentences
    avoid: tuple[str, ...]      # normalised `not:` sentences


def languages() -> tuple[str, ...]:
    """The base languages that have built-in intents (en, zh)."""
    return tuple(sorted(p.stem for p in DATA_DIR.glob("*.yaml") if "." not in p.stem))


@functools.cache
def load(language: str) -> dict[str, Builtin]:
    """The built-in intents of a base language (`en`, `zh`); {} for a language without them."""
    path = DATA_DIR / f"{language}.yaml"
    if not path.is_file():
        return {}
    try:
        data = read_yaml(path, "built-in intents file", shipped=True)   # as flows: a bare yes/no is text
    except (OSError, UserError) as exc:
        raise BuiltinDataError(f"{path}: cannot read the built-in intents ({exc}): reinstall ivr") from exc
    if not isinstance(data, dict) or set(data) != set(NAMES):
        raise BuiltinDataError(f"{path}: the built-in intents must be exactly {', '.join(NAMES)}: reinstall ivr")
    return {name: _one(path, name, data[name]) for name in NAMES}


@functools.cache
def library(language: str, leave_out: tuple[str, ...] = ()) -> dict[str, Builtin]:
    """The intent library of a base language: {"domain.intent": Builtin}, every domain's file
    (`library/<domain>.<language>.yaml`) with what callers were heard saying (`library/heard/`, but the
    parts `leave_out`) after its own examples; {} for a language without one."""
    heard = _heard(language, leave_out)
    out: dict[str, Builtin] = {}
    for path, domain, data in _domain_files(LIBRARY_DIR, language, "intent library file"):
        if not _NAME.match(domain) or not isinstance(data, dict) or not data:
            raise BuiltinDataError(f"{path}: an intent library file maps intent names to say/examples/not: "
                                   "reinstall ivr")
        for intent, spec in data.items():
            if not isinstance(intent, str) or not _NAME.match(intent):
                raise BuiltinDataError(f"{path}: {intent!r} is not an intent name (lower case, digits, _)")
            known = _one(path, f"{domain}.{intent}", spec)
            extra = heard.pop(f"{domain}.{intent}", ())
            out[known.name] = replace(known, examples=tuple(dict.fromkeys(
                e for e in (*known.examples, *extra) if e not in known.phrases)))
    if heard:
        raise BuiltinDataError(f"{HEARD_DIR}: heard sentences for intents the library lacks: "
                               f"{', '.join(sorted(heard))}: reinstall ivr")
    return out


@functools.lru_cache(maxsize=8)
def heard_sentences(language: str) -> frozenset[str]:
    """Every sentence heard from callers in `language` (all parts, normalised): examples written as a recognizer heard
    them, sound-alike errors included, which ivr.flow.homophones must not take for the answers' own vocabulary."""
    return frozenset(t for texts in _heard(language, ()).values() for t in texts)


def _heard(language: str, leave_out: tuple[str, ...]) -> dict[str, list[str]]:
    """{"domain.intent": normalised sentences} heard from callers (`library/heard/<domain>.<language>.yaml`: intent
    -> part -> sentences), every part but `leave_out`."""
    out: dict[str, list[str]] = {}
    for path, domain, data in _domain_files(HEARD_DIR, language, "heard sentences file"):
        if not isinstance(data, dict) or not all(
                isinstance(parts, dict) and all(isinstance(v, list) and all(isinstance(t, str) and normalize(t)
                                                                            for t in v) for v in parts.values())
                for parts in data.values()):
            raise BuiltinDataError(f"{path}: a heard sentences file maps intents to parts to lists of sentences: "
                                   "reinstall ivr")
        for intent, parts in data.items():
            out[f"{domain}.{intent}"] = [normalize(t) for part, texts in parts.items() if part not in leave_out
                                         for t in texts]
    return out


def _domain_files(folder: Path, language: str, what: str):
    """(path, domain, data) of every `<domain>.<language>.yaml` in `folder`, read as flows read YAML."""
    for path in sorted(folder.glob(f"*.{language}.yaml")):
        try:
            data = read_yaml(path, what, shipped=True)
        except (OSError, UserError) as exc:
            raise BuiltinDataError(f"{path}: cannot read the {what} ({exc}): reinstall ivr") from exc
        yield path, path.name[: -len(f".{language}.yaml")], data


@functools.cache
def names(language: str | None = None) -> tuple[str, ...]:
    """Every name `builtin:` accepts: the system intents, then the library's `domain.intent` names (of one base
    language, or of every language that has a library)."""
    langs = (language,) if language else tuple(sorted({p.name.split(".")[-2] for p in LIBRARY_DIR.glob("*.yaml")}))
    return NAMES + tuple(sorted({n for lang in langs for n in library(lang)}))


def find(language: str, name: str) -> Builtin | None:
    """The built-in or library intent `name` in a base language, or None when that language lacks it."""
    return load(language).get(name) or library(language).get(name)


@functools.cache
def off_topic(language: str) -> tuple[str, ...]:
    """What callers say that no hotline answers (`builtin/offtopic.<language>.yaml`: chit-chat, weather, asides,
    other businesses' requests, cut-off half sentences, fillers), normalised; () for a language without the file.
    ivr.flow.understand holds an answer nearer to one of these than to its own phrases under the confirm band."""
    path = DATA_DIR / f"offtopic.{language}.yaml"
    if not path.is_file():
        return ()
    try:
        data = read_yaml(path, "off-topic sentences file", shipped=True)
    except (OSError, UserError) as exc:
        raise BuiltinDataError(f"{path}: cannot read the off-topic sentences ({exc}): reinstall ivr") from exc
    if not isinstance(data, dict) or not data or not all(
            isinstance(v, list) and v and all(isinstance(t, str) and normalize(t) for t in v) for v in data.values()):
        raise BuiltinDataError(f"{path}: an off-topic sentences file maps kinds to lists of sentences: reinstall ivr")
    return tuple(dict.fromkeys(normalize(t) for v in data.values() for t in v))


def _one(path: Path, name: str, spec) -> Builtin:
    if not isinstance(spec, dict) or not set(spec) <= _KEYS or "say" not in spec:
        raise BuiltinDataError(f"{path}: '{name}' must map say/examples/not to lists of sentences")
    lists = {}
    for key in _KEYS:
        value = spec.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and normalize(v) for v in value):
            raise BuiltinDataError(f"{path}: '{name}.{key}' must be a list of sentences")
        lists[key] = value
    try:
        phrases = tuple(dict.fromkeys(p for t in lists["say"] for p in expand(t)))
    except TemplateError as exc:
        raise BuiltinDataError(f"{path}: '{name}.say': bad sentence template: {exc}") from exc
    examples = tuple(dict.fromkeys(normalize(v) for v in lists["examples"]))
    return Builtin(name, phrases, tuple(e for e in examples if e not in phrases),
                   tuple(dict.fromkeys(normalize(v) for v in lists["not"])))


def merge(intent: Intent, known: Builtin) -> Intent:
    """`intent` hearing the built-in one too: its own phrases (the built-in's when it has none), its own
    examples then the built-in's (none repeating a phrase), its own `not:` then the built-in's."""
    phrases = intent.phrases or known.phrases
    examples = tuple(dict.fromkeys(e for e in (*intent.examples, *known.examples) if e not in phrases))
    return Intent(intent.name, phrases, examples, tuple(dict.fromkeys((*intent.avoid, *known.avoid))), known.name)
