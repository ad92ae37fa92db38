"""The `queue:` step from YAML: wait for an agent, with hold music, announcements and callbacks.

    wait_for_agent:
      say: All our agents are busy.
      queue: {name: support, hold_music: hold.wav, announce_every: 30s, max_wait: 5m,
              callback_after: 2m, callback_key: "1", reason: "{{ last.choice }}",
              on_timeout: voicemail, on_empty: closed, on_callback: goodbye}

The caller waits until an agent answers (the call is then bridged to the agent's phone and
the flow is over), the wait reaches `max_wait` (`on_timeout`), nobody is logged in to take
calls (`on_empty`), or the caller asks to be called back (`on_callback`, after the task is
stored). Without those steps, a built-in goodbye is said and the call ends. The interpreter
side is `ivr/flow/queueing.py`; the call loop's side `ivr/call_queue.py`.
"""

import re

from ivr.durations import DurationError, parse_duration_ms
from ivr.flow.model import QueueSpec
from ivr.flow.yamlsrc import LineDict, as_text

QUEUE_KEYS = {"name", "hold_music", "announce_every", "max_wait", "callback_after", "callback_key", "reason",
              "on_timeout", "on_empty", "on_callback"}
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULTS_MS = {"announce_every": 30_000, "max_wait": 300_000}


def build_queue(builder, spec: LineDict) -> QueueSpec | None:
    """`builder` is the loader's StepBuilder (problems, templates, base_dir)."""
    p = builder.p
    value = spec["queue"]
    if isinstance(value, str):
        value = _linedict({"name": value}, spec)
    if not isinstance(value, LineDict):
        p.error(spec, "queue", "'queue' must be a queue name or {name: ..., hold_music: ..., max_wait: ...}")
        return None
    p.check_keys(value, QUEUE_KEYS, "queue")
    name = str(value.get("name") or "")
    if not QUEUE_NAME.match(name):
        p.error(value, "name", f"queue name {name[:40]!r} is not usable",
                "1 to 64 letters, digits, '.', '_' or '-', e.g. name: support")
        return None
    music = value.get("hold_music")
    if music is not None:
        path = (builder.base_dir / str(music)).resolve()
        if not path.is_file() or path.suffix.lower() != ".wav":
            p.error(value, "hold_music", f"hold music not found or not a .wav: {path}",
                    "paths are relative to the flow file; a WAV file (any rate, mono or stereo)")
        music = str(path)
    times = {}
    for key in ("announce_every", "max_wait", "callback_after"):
        times[key] = _duration(p, value, key, DEFAULTS_MS.get(key))
    key = value.get("callback_key")
    if key is not None:
        key = str(key)
        if len(key) != 1 or key not in "0123456789*#":
            p.error(value, "callback_key", f"callback_key {key!r} is not one keypad key", 'e.g. callback_key: "1"')
            key = None
    if times["callback_after"] is not None and key is None:
        p.error(value, "callback_after", "'callback_after' offers a callback, but there is no callback_key",
                'add callback_key: "1" (the key the offer names)')
    reason = builder.template(value, "reason", str(value["reason"])) if "reason" in value else None
    return QueueSpec(name, music, times["announce_every"], times["max_wait"], times["callback_after"], key, reason,
                     as_text(value.get("on_timeout")), as_text(value.get("on_empty")),
                     as_text(value.get("on_callback")))


def _linedict(data: dict, at: LineDict) -> LineDict:
    out = LineDict(data)
    out.line, out.col = at.line, at.col
    out.key_pos = {k: at.key_pos.get("queue", (at.line, at.col)) for k in data}
    return out


def _duration(p, where, key: str, default_ms: int | None) -> int | None:
    if key not in where:
        return default_ms
    try:
        ms = parse_duration_ms(where[key])
    except DurationError as exc:
        p.error(where, key, f"'{key}': {exc.message}", exc.hint)
        return default_ms
    if ms <= 0:
        p.error(where, key, f"'{key}' must be longer than 0", "e.g. 30s, 5m")
        return default_ms
    return ms
