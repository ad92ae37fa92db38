"""A loaded call flow: plain frozen data, checked and ready for the interpreter."""

from dataclasses import dataclass, field

from ivr.flow.nlu import Intent

DEFAULT_NO_INPUT_MS = 5000
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
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


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    line: int
    say: tuple[Prompt, ...] = ()
    ask: Prompt | None = None
    choices: tuple[Choice, ...] = ()
    no_input: tuple[str, ...] = ()
    no_match: tuple[str, ...] = ()
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    on_fail: str | None = None
    no_input_ms: int = DEFAULT_NO_INPUT_MS
    next: str | None = None
    transfer: str | None = None
    transfer_reason: str = ""
    hangup: bool = False

    @property
    def listens(self) -> bool:
        return self.ask is not None

    def targets(self) -> list[tuple[str, str]]:
        """(key, step name) for every step this one can lead to."""
        out = [("next", self.next), ("on_fail", self.on_fail)]
        out += [(f"choices.{c.name}.goto", c.goto) for c in self.choices]
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

    def prompts(self) -> list[str]:
        """Every fixed prompt text, to synthesise when the flow loads (replies never wait)."""
        texts: list[str] = []
        for step in self.steps.values():
            texts += [p.text for p in step.say if not p.audio_path]
            if step.ask and not step.ask.audio_path:
                texts.append(step.ask.text)
            texts += [*step.no_input, *step.no_match]
        return list(dict.fromkeys(t for t in texts if t))
