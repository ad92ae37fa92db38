"""A loaded call flow: plain frozen data, checked and ready for the interpreter.

Text that may hold `{{ ... }}` is a compiled `Template` (ivr.flow.templates); plain text
renders to itself, so fixed prompts can be synthesised when the flow loads.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ivr.flow.hours import BusinessHours
from ivr.flow.nlu import Intent
from ivr.flow.slots import SlotSpec
from ivr.flow.templates import Template
from ivr.lang import base_language

if TYPE_CHECKING:   # knowledge.py reads files with the loader's helpers; avoid an import cycle
    from ivr.flow.knowledge import KnowledgeBase

DEFAULT_NO_INPUT_MS = 5000
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_INTER_DIGIT_MS = 3000
DEFAULT_ACCEPT = 0.8       # a match at least this good takes the choice
DEFAULT_CONFIRM = 0.6      # between this and accept: "Did you mean ...?"
DEFAULT_FAQ_MARGIN = 0.1   # an FAQ answer must beat the best choice by this much (docs/BENCHMARKS.md)


@dataclass(frozen=True, slots=True)
class Prompt:
    text: Template
    audio_path: str | None = None   # a recorded WAV plays instead of synthesis
    barge_in: bool = True


@dataclass(frozen=True, slots=True)
class Choice:
    """An answer a listening step (or every step, for globals) understands."""

    name: str
    intent: Intent                      # phrases by speech
    dtmf: str = ""                      # key(s) by keypad
    goto: str | None = None
    action: str | None = None           # repeat | hangup (globals)
    label: str = ""                     # how "Did you mean ...?" names it
    line: int = 0
    goto_pos: tuple[int, int] = field(default=(0, 0), compare=False)   # where `goto:` stands, for validate
    assign: tuple[tuple[str, object], ...] = ()   # `set:` when the choice is taken


@dataclass(frozen=True, slots=True)
class Route:
    """One branch of a conditional `next`: go to `goto` when `condition` is true (None = always)."""

    goto: str
    condition: Template | None = None
    line: int = 0
    col: int = 0                        # of the step name, for validate's messages
    cond_pos: tuple[int, int] = field(default=(0, 0), compare=False)   # where `if:` stands


@dataclass(frozen=True, slots=True)
class Collect:
    slot: SlotSpec
    confirm: Template | None = None     # yes/no question after the value is heard
    sensitive: bool = False             # card numbers, PINs: masked in traces, logs, context
    max_digits: int = 1
    min_digits: int = 1
    terminator: str = "#"
    inter_digit_ms: int = DEFAULT_INTER_DIGIT_MS


@dataclass(frozen=True, slots=True)
class HttpSpec:
    method: str
    url: Template
    headers: tuple[tuple[str, Template], ...] = ()
    json_body: object = None             # nested data whose strings are Templates
    timeout_ms: int = 3000
    retries: int = 0
    save: str | None = None


@dataclass(frozen=True, slots=True)
class TransferSpec:
    to: Template
    reason: Template | None = None
    context: tuple[tuple[str, Template], ...] = ()


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """`queue:` wait for an agent (ivr/flow/queue_step.py, ivr/agents)."""

    name: str
    hold_music: str | None = None        # WAV path (resolved), looped while waiting; None: silence
    announce_every_ms: int = 30_000
    max_wait_ms: int = 300_000
    callback_after_ms: int | None = None  # offer a callback after this wait (None: only by the key)
    callback_key: str | None = None      # the key that asks for a callback (None: no callbacks)
    reason: Template | None = None       # why the caller is queued (shown to the agent)
    on_timeout: str | None = None
    on_empty: str | None = None          # no agent logged in, or the queue closed
    on_callback: str | None = None       # after the callback task is stored


@dataclass(frozen=True, slots=True)
class LanguageOption:
    """One language a `language:` step offers: its part of the menu, its key, the words that pick it."""

    tag: str                            # canonical, one of the flow's `languages`
    say: Template                       # played in this language's voice
    dtmf: str = ""
    words: tuple[str, ...] = ()         # normalised words/phrases that name it ("english", "普通话")


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    line: int
    say: tuple[Prompt, ...] = ()
    ask: Prompt | None = None
    choices: tuple[Choice, ...] = ()
    collect: Collect | None = None
    faq: bool = False
    after_faq: str | None = None
    no_input: tuple[Template, ...] = ()
    no_match: tuple[Template, ...] = ()
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    on_fail: str | None = None
    no_input_ms: int = DEFAULT_NO_INPUT_MS
    assign: tuple[tuple[str, object], ...] = ()   # `set:` variable -> Template or literal
    next: tuple[Route, ...] = ()
    http: HttpSpec | None = None
    on_error: str | None = None
    run: str | None = None               # subflow to enter; `next` continues after it returns
    returns: bool = False                # end of a subflow: back to the caller's `next`
    transfer: TransferSpec | None = None
    hangup: bool = False
    queue: QueueSpec | None = None
    language_menu: tuple[LanguageOption, ...] = ()   # a `language:` step: the caller picks the call's language
    file: str = ""                                    # the file it was written in (subflows: theirs)
    key_pos: dict = field(default_factory=dict, hash=False, compare=False, repr=False)  # key -> (line, col)

    def where(self, key: str | None = None) -> str:
        start = self.key_pos.get("", (self.line, 1))
        line, col = self.key_pos.get(key, start) if key else start
        return f"{self.file}:{line}:{col}"

    @property
    def listens(self) -> bool:
        return self.ask is not None or bool(self.language_menu)

    def targets(self) -> list[tuple[str, str]]:
        """(key, step name) for every step this one can lead to."""
        out = [("next", r.goto) for r in self.next]
        out += [("on_fail", self.on_fail), ("on_error", self.on_error), ("after_faq", self.after_faq)]
        out += [(f"choices.{c.name}.goto", c.goto) for c in self.choices]
        if self.queue:
            out += [(f"queue.{k}", getattr(self.queue, k)) for k in ("on_timeout", "on_empty", "on_callback")]
        return [(k, v) for k, v in out if v]


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    path: str
    language: str
    start: str
    steps: dict[str, Step] = field(hash=False)
    globals: tuple[Choice, ...] = ()
    voice: str | None = None          # TTS spec, e.g. "piper", "espeak:cmn"
    agent_line: str | None = None
    on_error: str | None = None       # the step a failing template or service goes to (sees error.*)
    knowledge: "KnowledgeBase | None" = None
    hours: BusinessHours | None = None
    caller_lookup: HttpSpec | None = None
    variables: tuple[tuple[str, object], ...] = ()
    subflows: dict[str, str] = field(default_factory=dict, hash=False)   # name -> its start step
    watch: tuple[Route, ...] = ()     # checked after every caller utterance (ivr.flow.watch)
    accept: float = DEFAULT_ACCEPT
    confirm: float = DEFAULT_CONFIRM
    faq_threshold: float | None = None   # nlu.faq: the knowledge base's threshold for this flow (None: its own)
    faq_margin: float = DEFAULT_FAQ_MARGIN
    env_names: tuple[str, ...] = ()   # environment variables the flow's HTTP steps read
    sources: tuple[str, ...] = ()     # every file it was built from (hot reload watches them)
    warnings: tuple[str, ...] = ()    # `ivr validate` shows them; the flow still loads
    languages: tuple[str, ...] = ()   # every language the flow speaks (canonical tags), the first the default
    variants: dict = field(default_factory=dict, hash=False, compare=False, repr=False)   # base -> Flow in it

    def in_language(self, language: str | None) -> "Flow":
        """The same flow with its prompts, phrases, FAQ and defaults in `language` (itself when it
        has no such variant: a single-language flow, or a language it does not declare)."""
        return self.variants.get(base_language(language, ""), self) if language else self

    def speaks(self, language: str | None) -> bool:
        return base_language(language, "") in {base_language(t) for t in (self.languages or (self.language,))}

    @property
    def lang(self) -> str:
        return base_language(self.language)

    def prompts(self) -> list[str]:
        """Every fixed prompt text, to synthesise when the flow loads (replies never wait)."""
        texts: list = []
        for step in self.steps.values():
            texts += [p.text for p in step.say if not p.audio_path]
            if step.ask and not step.ask.audio_path:
                texts.append(step.ask.text)
            texts += [*step.no_input, *step.no_match]
        if self.knowledge:
            texts += [e.answer for e in self.knowledge.entries]
        for step in self.steps.values():
            texts += [o.say for o in step.language_menu if base_language(o.tag) == self.lang]   # in its voice
        fixed = [t.source if isinstance(t, Template) else t for t in texts
                 if not isinstance(t, Template) or t.fixed]
        return list(dict.fromkeys(t for t in fixed if t))
