"""Conversation tests in YAML (`ivr test tests/flows/`): caller turns, expected answers.

    flow: ../../flows/retail/retail.yaml
    caller: "+15550101"                 # caller ID (the caller lookup uses it)
    time: "2026-11-24T10:00:00+08:00"   # the call's start: business hours, relative dates
    language: en-US                     # a flow with several: the call's language (no language menu)
    env: {ORDERS_API: http://orders.test}
    http:                               # canned service answers ("METHOD url-pattern": response)
      "GET */orders/481516": {status: 200, json: {status: shipped}}
    tests:
      - name: order status by keypad
        turns:
          - expect: {step: main, said: "Thanks for calling"}
          - caller: "track my order"        # speech as text
            expect: {step: order_id}
          - keys: "481516#"                 # or caller: "#481516#"
          - wav: calls/yes.wav              # real audio, through the recognizer
          - silence: true                   # the caller says nothing (no-input)
        expect:
          path: [greet, main, order_id, lookup]   # steps visited, in this order (others may be between)
          slots: {order_id: "481516"}
          http: ["GET */orders/481516"]
          outcome: {end: hangup}                  # or {end: transfer, reason: ...}

A failing test prints what differs and the conversation up to there.
"""

import fnmatch
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ivr.errors import UserError
from ivr.events import Hangup, Transfer
from ivr.flow.http_fake import FakeResponses
from ivr.flow.loader import load_flow
from ivr.flow.textcall import Reply, TextCall
from ivr.flow.yamlsrc import FlowError, LineDict, Problems, read_yaml

FILE_KEYS = {"flow", "caller", "called", "time", "env", "http", "tests", "asr", "language"}
TEST_KEYS = {"name", "caller", "called", "time", "env", "http", "turns", "expect", "language"}
TURN_KEYS = {"caller", "keys", "wav", "silence", "hangup", "expect"}
TURN_EXPECT = {"step", "visited", "said", "not_said", "slots", "intent", "end"}
FINAL_EXPECT = {"path", "visited", "said", "slots", "http", "outcome"}
HTTP_EXPECT = {"requests", "exact"}


@dataclass(slots=True)
class TestResult:
    file: str
    name: str
    line: int
    failures: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def find_test_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.yaml") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"no such test file or directory: {path}")
    return files


async def run_file(path: Path, recognizer=None) -> list[TestResult]:
    """Run every test of one file. `recognizer(wav_path, flow) -> text` serves `wav:` turns."""
    data = read_yaml(path, "conversation test file")
    problems = Problems(path)
    if not isinstance(data, LineDict) or "flow" not in data or not isinstance(data.get("tests"), list):
        raise FlowError([f"{path}:1:1: a conversation test file needs 'flow: FILE' and 'tests: [...]'"])
    problems.check_keys(data, FILE_KEYS, "the test file")
    for test in data["tests"]:
        if isinstance(test, LineDict):
            problems.check_keys(test, TEST_KEYS, "a test")
            for turn in test.get("turns") or []:
                if isinstance(turn, LineDict):
                    problems.check_keys(turn, TURN_KEYS, "a turn")
                    if isinstance(turn.get("expect"), LineDict):
                        problems.check_keys(turn["expect"], TURN_EXPECT, "a turn's expect")
            if isinstance(test.get("expect"), LineDict):
                problems.check_keys(test["expect"], FINAL_EXPECT, "a test's expect")
                if isinstance(test["expect"].get("http"), LineDict):
                    problems.check_keys(test["expect"]["http"], HTTP_EXPECT, "expect.http")
    problems.raise_if_any()
    flow = load_flow(path.parent / str(data["flow"]))
    _check_times(problems, data, flow)
    problems.raise_if_any()
    results = []
    for index, test in enumerate(data["tests"]):
        if not isinstance(test, LineDict):
            raise FlowError([f"{path}:{data['tests'].item_pos[index][0]}:1: each test must be a mapping"])
        results.append(await _run_test(path, flow, data, test, recognizer))
    return results


async def _run_test(path: Path, flow, defaults: LineDict, test: LineDict, recognizer) -> TestResult:
    def pick(key, default=None):
        return test.get(key, defaults.get(key, default))

    result = TestResult(str(path), str(test.get("name") or f"test at line {test.line}"), test.line)
    own = dict(test.get("http") or {})   # the test's answers first: they win for the same request
    http = FakeResponses({**own, **{k: v for k, v in (defaults.get("http") or {}).items() if k not in own}})
    at = pick("time")
    at_s = datetime.fromisoformat(str(at)).timestamp() if at else time.time()   # as ivr chat: else now
    call = TextCall(flow, http, env={str(k): str(v) for k, v in (pick("env") or {}).items()},
                    caller=str(pick("caller", "") or ""), called=str(pick("called", "") or ""), at_s=at_s,
                    language=str(pick("language")) if pick("language") else None)   # as a routed number
    log = result.transcript
    said_all: list[str] = []
    try:
        turns = list(test.get("turns") or [])
        first = turns[0] if turns and not _is_input(turns[0]) else None
        reply = await call.start()
        _log_reply(log, reply, call)
        said_all += reply.said
        if first is not None:
            _check_turn(result, 1, first.get("expect") or {}, reply, call, call.state.path)
            turns = turns[1:]
        for n, turn in enumerate(turns, start=2 if first is not None else 1):
            if call.ended:
                result.failures.append(f"turn {n}: the call already ended ({_end_text(call)}); "
                                       "remove the remaining turns or check why it ended")
                break
            before = len(call.state.path)
            label, reply = await _send(call, turn, path, recognizer)
            log.append(f"caller: {label}")
            _log_reply(log, reply, call)
            said_all += reply.said
            _check_turn(result, n, turn.get("expect") or {}, reply, call, call.state.path[before:])
        _check_final(result, test.get("expect") or {}, call, said_all, http)
    finally:
        # Test output is shown and kept (CI logs): sensitive values and card numbers masked.
        result.failures[:] = [call.redactor.text(f) for f in result.failures]
        result.transcript[:] = [call.redactor.text(t) for t in result.transcript]
        await call.close()
    return result


def _is_input(turn) -> bool:
    return isinstance(turn, dict) and any(k in turn for k in ("caller", "keys", "wav", "silence", "hangup"))


async def _send(call: TextCall, turn, path: Path, recognizer) -> tuple[str, Reply]:
    if not isinstance(turn, dict):
        raise FlowError([f"{path}: a turn must be a mapping like {{caller: \"text\"}} or {{keys: \"1\"}}"])
    if "keys" in turn:
        return f"[keys {turn['keys']}]", await call.press(str(turn["keys"]))
    if turn.get("silence"):
        return "[silence]", await call.silence()
    if turn.get("hangup"):
        return "[hangs up]", await call.hang_up()
    if "wav" in turn:
        if recognizer is None:
            raise UserError("this test has wav: turns but no recognizer is loaded")
        text = await recognizer(path.parent / str(turn["wav"]), call.flow)
        return f"[wav {turn['wav']}] heard {text!r}", await call.say(text)
    text = str(turn.get("caller", ""))
    if text.startswith("#") and len(text) > 1:
        return f"[keys {text[1:]}]", await call.press(text[1:])
    return text, await call.say(text)


def _log_reply(log: list[str], reply: Reply, call: TextCall) -> None:
    log += [f"  http: {h}" for h in reply.http]
    log += [f"  ivr: {s}" for s in reply.said]
    if reply.listening:
        log.append(f"  [listening at step {reply.listening.step}]")
    if reply.end:
        log.append(f"  [{_end_text(call)}]")


def _end_text(call: TextCall) -> str:
    end = next((r.end for r in reversed(call.replies) if r.end), None)
    if isinstance(end, Transfer):
        return f"transfer to {end.target} ({end.reason})"
    return f"hang up ({end.reason})" if isinstance(end, Hangup) else "ended"


def _check_turn(result: TestResult, n: int, expect: dict, reply: Reply, call: TextCall, visited) -> None:
    """`step`: where the call listens after this turn; `visited`: steps entered during it, in order."""
    fail = result.failures.append
    step = reply.listening.step if reply.listening else None
    if "step" in expect and step != str(expect["step"]):
        now = f"it is at '{step}'" if step else (f"the call ended: {_end_text(call)}" if call.ended
                                                 else "it is not listening")
        passed = (f" ('{expect['step']}' was visited on the way: to check steps passed through, use visited: "
                  f"[{expect['step']}])") if str(expect["step"]) in visited else ""
        fail(f"turn {n}: expected to be listening at step '{expect['step']}', but {now}{passed}")
    wanted = [str(s) for s in _list(expect.get("visited"))]
    if wanted and not _subsequence(wanted, list(visited)):
        fail(f"turn {n}: expected to pass through steps {wanted} in this order\n      visited this turn: "
             f"{list(visited)}")
    said = " ".join(reply.said)
    for text in _list(expect.get("said")):
        if text.lower() not in said.lower():
            fail(f"turn {n}: expected the machine to say {text!r}\n      it said: {said!r}")
    for text in _list(expect.get("not_said")):
        if text.lower() in said.lower():
            fail(f"turn {n}: the machine said {text!r}, which it should not")
    if "intent" in expect:
        got = call.state.last.choice if call.state.last else None
        if got != expect["intent"]:
            fail(f"turn {n}: expected intent '{expect['intent']}', got '{got}'")
    _check_slots(fail, f"turn {n}", expect.get("slots"), call)
    if "end" in expect and (reply.end is None or _kind(reply.end) != expect["end"]):
        fail(f"turn {n}: expected the call to end with {expect['end']}, got "
             + (_end_text(call) if reply.end else "no end"))


def _check_final(result: TestResult, expect: dict, call: TextCall, said_all: list[str], http: FakeResponses) -> None:
    fail = result.failures.append
    path = list(call.state.path)
    key = "visited" if "visited" in expect else "path"   # `path` is the older name of `visited`
    wanted = [str(s) for s in _list(expect.get(key))]
    if wanted and not _subsequence(wanted, path):
        fail(f"{key}: expected steps in order {wanted}\n      visited: {path}")
    said = " ".join(said_all).lower()
    for text in _list(expect.get("said")):
        if text.lower() not in said:
            fail(f"said: the machine never said {text!r}")
    _check_slots(fail, "slots", expect.get("slots"), call)
    if "http" in expect:
        _check_http(fail, expect["http"], [f"{r.method} {r.url}" for r in call.http.requests])
    if http.unmatched:
        fail(f"http: no canned response for {http.unmatched} (add them under http:)")
    outcome = expect.get("outcome")
    if outcome:
        end = next((r.end for r in reversed(call.replies) if r.end), None)
        if end is None:
            fail(f"outcome: expected the call to end with {outcome.get('end')}, but it is still going")
        else:
            got = {"end": _kind(end), "target": getattr(end, "target", None), "reason": end.reason}
            for key, value in outcome.items():
                if key in got and str(got[key]) != str(value) and not fnmatch.fnmatchcase(str(got[key]), str(value)):
                    fail(f"outcome: expected {key} {value!r}, got {got[key]!r}")


def _check_http(fail, spec, made: list[str]) -> None:
    """Expected requests ("METHOD url-pattern", `*` wildcard) must be made in this order; others may come
    between them unless `exact: true`. The failure says what is missing and what is extra."""
    exact = isinstance(spec, dict) and spec.get("exact") is True
    want = [str(w) for w in _list(spec.get("requests") if isinstance(spec, dict) else spec)]
    missing, used, start = [], set(), 0
    for pattern in want:
        hit = next((i for i in range(start, len(made)) if fnmatch.fnmatchcase(made[i], pattern)), None)
        if hit is None:
            missing.append(pattern)
        else:
            used.add(hit)
            start = hit + 1
    extra = [m for i, m in enumerate(made) if i not in used] if exact else []
    if missing:
        fail(f"http: expected requests not made (in this order): {missing}\n      made: {made}")
    if extra:
        fail(f"http: requests made but not expected (exact: true): {extra}\n      expected: {want}")


def _check_slots(fail, where: str, expected, call: TextCall) -> None:
    """A sensitive slot may be expected by its value or as it is masked (`****`, `************1111`)."""
    for name, value in (expected or {}).items():
        got = call.slots.get(name, "<not set>")
        real = call.state.slots.get(name, "<not set>")
        if str(value) not in (str(got), str(real)) and value not in (got, real) and not _same_mask(value, got):
            fail(f"{where}: expected slot {name} = {value!r}, got {got!r}")


def _same_mask(expected, got) -> bool:
    """"****1111" expects the masked "************1111": the number of stars is not the point."""
    if not (isinstance(expected, str) and isinstance(got, str) and expected.startswith("*") and got.startswith("*")):
        return False
    return expected.lstrip("*") == got.lstrip("*")


def _check_times(problems: Problems, data: LineDict, flow) -> None:
    """`time:` must be ISO; a flow with business hours needs one, or `open` would follow the wall clock."""
    for where in [data, *(t for t in data["tests"] if isinstance(t, LineDict))]:
        if where.get("time") is not None:
            try:
                datetime.fromisoformat(str(where["time"]))
            except ValueError:
                problems.error(where, "time", f"time {where['time']!r} is not an ISO date and time",
                               'e.g. time: "2026-11-24T10:00:00+08:00"')
        elif where is not data and flow.hours is not None and data.get("time") is None:
            problems.error(where, None, f"test '{where.get('name') or where.line}' needs a time: its flow has "
                           "business hours, so without one 'open' would depend on when the test runs",
                           'add time: "2026-11-24T10:00:00+08:00" to the test or the file')


def _kind(end) -> str:
    return "transfer" if isinstance(end, Transfer) else "hangup"


def _list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _subsequence(wanted: list[str], path: list[str]) -> bool:
    it = iter(path)
    return all(any(step == w for step in it) for w in wanted)


def format_failure(result: TestResult) -> str:
    lines = [f"FAIL {result.file}:{result.line}: {result.name}"]
    lines += [f"  - {f}" for f in result.failures]
    lines += ["  conversation:"] + [f"    {t}" for t in result.transcript]
    return "\n".join(lines)
