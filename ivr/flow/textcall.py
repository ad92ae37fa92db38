"""Drive a flow with text instead of audio: `ivr chat` and conversation tests.

The same interpreter as a live call; the only difference is where the events come from.
HTTP steps are executed by the given client (a real one, or canned `FakeResponses`), so a
conversation exercises the whole flow, services included.
"""

from dataclasses import dataclass, field

from ivr import sentiment
from ivr.events import (
    Action,
    CallerHungUp,
    CallStarted,
    Digits,
    Event,
    Fetch,
    Fetched,
    Hangup,
    Heard,
    Listen,
    NoInput,
    Play,
    Transfer,
)
from ivr.flow.http import HttpExecutor
from ivr.flow.http_fake import RecordingHttpClient
from ivr.flow.interpreter import CallState, Interpreter
from ivr.flow.model import Flow
from ivr.flow.state import public_slots
from ivr.privacy import Redactor

MAX_FETCHES = 32   # per caller input: a flow that keeps calling services is a bug


@dataclass(slots=True)
class Reply:
    """What the machine did in answer to one caller input."""

    said: list[str] = field(default_factory=list)
    listening: Listen | None = None
    end: Transfer | Hangup | None = None
    http: list[str] = field(default_factory=list)      # "GET url -> 200" per request made


class TextCall:
    def __init__(self, flow: Flow, http: HttpExecutor, *, env: dict[str, str] | None = None,
                 caller: str = "", called: str = "", at_s: float | None = None, params: dict | None = None,
                 language: str | None = None) -> None:
        self.interp = Interpreter(flow, env, language)   # language: known before the call (a routed number)
        self.http = RecordingHttpClient(http)
        self.state = CallState()
        self.started = CallStarted(caller, called, dict(params or {}), at_s)
        self.replies: list[Reply] = []
        # What this conversation may show (chat, test output): sensitive values and card numbers masked.
        self.redactor = Redactor.for_flow(flow)

    @property
    def flow(self) -> Flow:
        """The flow in the call's language (it changes at a `language:` step)."""
        return self.interp.speaking(self.state).flow

    @property
    def ended(self) -> bool:
        return self.state.ended

    @property
    def slots(self) -> dict:
        return public_slots(self.state)

    async def start(self) -> Reply:
        return await self.send(self.started)

    async def say(self, text: str) -> Reply:
        return await self.send(Heard(text, sentiment=sentiment.score(text, self.flow.language)))

    async def press(self, keys: str) -> Reply:
        return await self.send(Digits(keys))

    async def silence(self) -> Reply:
        return await self.send(NoInput())

    async def hang_up(self) -> Reply:
        return await self.send(CallerHungUp())

    async def send(self, event: Event) -> Reply:
        reply = Reply()
        if isinstance(event, Heard | Digits):
            self.redactor.input_at(self.state.step, event.text if isinstance(event, Heard) else event.digits)
        events = [event]
        for _ in range(MAX_FETCHES):
            self.state, actions = self.interp.handle(self.state, events.pop())
            fetch = self._collect(actions, reply)
            if fetch is None:
                break
            result = await self.http.execute(fetch.request)
            reply.http.append(f"{fetch.request.method} {self.http.requests[-1].url} -> "
                              f"{result.status if result.status is not None else result.error}")
            events.append(Fetched(result))
        self.redactor.learn_slots(self.state.slots, self.state.sensitive)
        self.replies.append(reply)
        return reply

    def _collect(self, actions: list[Action], reply: Reply) -> Fetch | None:
        fetch = None
        for action in actions:
            if isinstance(action, Play):
                reply.said.append(action.text or f"[audio {action.audio_path}]")
            elif isinstance(action, Listen):
                reply.listening = action
            elif isinstance(action, Transfer | Hangup):
                reply.end = action
            elif isinstance(action, Fetch):
                fetch = action
        return fetch

    async def close(self) -> None:
        self.redactor.close()
        await self.http.close()
