"""`ivr chat FLOW`: type as the caller; see prompts, matches, slots and the step.

    you> track my order          speech, as the recognizer would write it
    you> #481516                 keys (a leading #; a trailing # is the terminator key)
    you>                         (empty line) silence: the no-input timeout
    you> /hangup  /quit  /state  /help
"""

import sys
from collections.abc import Callable

from ivr.events import Hangup, Transfer
from ivr.flow.textcall import Reply, TextCall

HELP = ("type what the caller says; #123 presses keys; an empty line is silence (no input); "
        "/state shows slots and data; /hangup hangs up; /quit leaves")


async def chat(call: TextCall, read: Callable[[str], str] = input, write: Callable[[str], None] = print) -> int:
    shown = write

    def write(text: str) -> None:   # sensitive values and card numbers never reach the screen
        shown(call.redactor.text(text))

    write(f"chat with flow '{call.flow.name}' ({call.flow.language}). {HELP}")
    _show(write, call, await call.start())
    while not call.ended:
        try:
            line = read("you> ")
        except (EOFError, KeyboardInterrupt):
            write("")
            break
        line = line.strip()
        if line in ("/quit", "/exit"):
            break
        if line == "/help":
            write(HELP)
            continue
        if line == "/state":
            write(f"  slots: {call.slots}\n  data: {call.state.data}\n  caller: {call.state.caller}")
            continue
        if line == "/hangup":
            await call.hang_up()
            write("  [you hung up]")
            break
        if not line:
            reply = await call.silence()
        elif line.startswith("#") and len(line) > 1:
            reply = await call.press(line[1:])
        else:
            reply = await call.say(line)
        _show(write, call, reply, spoke=bool(line) and not line.startswith("#"))
    return 0


def _candidate(c: dict) -> str:
    """'track 0.93 (step, by meaning: words 0.63, meaning 0.91)': what the matcher weighed and why."""
    if c.get("group") == "faq":
        return f"{c['choice']} {c['score']:.2f} (FAQ entry)"
    by = {"words": "heard word for word", "sound-alike": "by sound-alike words", "meaning": "by meaning"}
    detail = f"words {c.get('words', 0):.2f}, meaning {c.get('meaning', 0):.2f}"
    signal = by.get(c.get("signal"), c.get("signal"))
    return f"{c['choice']} {c['score']:.2f} ({c.get('group', '')}, {signal}: {detail})"


def _show(write: Callable[[str], None], call: TextCall, reply: Reply, spoke: bool = False) -> None:
    last = call.state.last
    if call.state.confirming and call.state.confirming.kind == "choice":
        write(f"  not sure (score {last.score:.2f}): asking whether the caller meant '{call.state.confirming.name}'")
    elif last and last.via == "confirm":
        write(f"  answered the yes/no question: {last.choice}")
    elif last and (last.choice or last.via):
        what = {"slot": "slot", "faq": "answer", "confirm": "confirmation"}.get(last.via, "choice")
        write(f"  matched {what} '{last.choice or last.value}' (score {last.score:.2f}, via {last.via})")
    elif last and last.kind != "no_input" and call.replies[:-1]:
        write("  no match")
    if spoke and last and last.candidates:
        write("  candidates: " + "; ".join(_candidate(c) for c in last.candidates))
    for line in reply.http:
        write(f"  http: {line}")
    for text in reply.said:
        write(f"ivr> {text}")
    if call.slots:
        write(f"  slots: {call.slots}")
    if reply.listening:
        keys = (f"up to {reply.listening.max_digits} keys" if reply.listening.max_digits > 1 else "a key")
        write(f"  [step {reply.listening.step}: listening for speech or {keys}]")
    if isinstance(reply.end, Transfer):
        write(f"  [transfer to {reply.end.target}: {reply.end.reason}]")
        write(f"  [agent sees: {reply.end.context}]")
    elif isinstance(reply.end, Hangup):
        write(f"  [hang up: {reply.end.reason}]")
    sys.stdout.flush()
