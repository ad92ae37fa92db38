"""Build one step (and its choices, slot, HTTP call, transfer) from YAML, collecting problems.

The problems go into the loader's `Problems`, each with file:line:col and a hint. The values inside
the keys (templates, texts, durations, flags, prompts, routes, `set:`) are read by the builder's base,
`ValueBuilder` (ivr/flow/step_values.py).
"""

import difflib

from ivr import lang
from ivr.flow import builtins, languages, model
from ivr.flow.model import Choice, Collect, HttpSpec, Prompt, Step, TransferSpec
from ivr.flow.nlu import Intent
from ivr.flow.patterns import TemplateError, expand, normalize
from ivr.flow.queue_step import build_queue
from ivr.flow.slots import SLOT_TYPES, SlotSpec, check_spec
from ivr.flow.step_values import _NAME, RESERVED_NAMES, ValueBuilder
from ivr.flow.templates import Template
from ivr.flow.yamlsrc import LineDict, as_text

STEP_KEYS = {
    "say", "audio", "ask", "barge_in", "choices", "collect", "confirm", "faq", "after_faq", "no_input",
    "no_match", "max_attempts", "on_fail", "no_input_timeout", "set", "next", "goto", "http", "on_error",
    "run", "return", "transfer", "hangup", "queue", "language",
}
CHOICE_KEYS = {"say", "dtmf", "goto", "action", "label", "set", "examples", "not", "builtin"}
COLLECT_KEYS = {"slot", "type", "length", "min_length", "max_length", "min", "max", "currency", "sensitive",
                "terminator", "inter_digit_timeout", "max_digits"}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
HTTP_KEYS = {*HTTP_METHODS, "headers", "json", "timeout", "retries", "save"}
TRANSFER_KEYS = {"to", "reason", "context"}
GLOBAL_ACTIONS = {"repeat", "hangup"}
DTMF_KEYS = set("0123456789*#ABCD")


class StepBuilder(ValueBuilder):
    # ---- a step --------------------------------------------------------------------

    def step(self, name: str, spec, steps_data: LineDict) -> Step | None:
        if not isinstance(spec, LineDict):
            self.p.error(steps_data, name, f"step '{name}' must be a mapping of keys like say/ask/next")
            return None
        self.p.check_keys(spec, STEP_KEYS, f"step '{name}'")
        barge_in = self.flag(spec, "barge_in", True)
        say = self.prompts(spec, barge_in) if "say" in spec else ()
        ask = None
        if "ask" in spec:
            value = languages.localized(self, spec, "ask")
            languages.check_plain(self, spec, "ask")
            if isinstance(value, list) and all(isinstance(t, str) for t in value):
                value = " ".join(value)   # several sentences make one question
            asked = self.template(spec, "ask", value) if value is not None else None
            ask = Prompt(asked, None, barge_in) if asked else None
        for key in ("choices", "collect", "faq"):
            if key in spec and "ask" not in spec:
                self.p.error(spec, key, f"step '{name}' has '{key}' but no 'ask' prompt",
                             "add ask: \"...\" saying what the caller can answer")
        timeout = self.duration(spec, "no_input_timeout", model.DEFAULT_NO_INPUT_MS)
        attempts = spec.get("max_attempts", model.DEFAULT_MAX_ATTEMPTS)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            self.p.error(spec, "max_attempts", "'max_attempts' must be a whole number >= 1")
            attempts = model.DEFAULT_MAX_ATTEMPTS
        collect = self.collect(spec) if "collect" in spec else None
        confirm = self._confirm(spec) if "confirm" in spec else None
        if confirm is not None and collect is None:
            self.p.error(spec, "confirm", "'confirm' belongs to a step that collects a slot",
                         "add collect: {slot: NAME, type: TYPE}")
        if collect is not None and confirm is not None:
            collect = Collect(**{**{f: getattr(collect, f) for f in Collect.__slots__}, "confirm": confirm})
        step = Step(
            name=name, line=spec.line, say=say, ask=ask,
            choices=tuple(self.choices(spec.get("choices") or {}, f"step '{name}'", where=spec, key="choices")),
            collect=collect, faq=self.flag(spec, "faq", False), after_faq=as_text(spec.get("after_faq")),
            no_input=self.texts(spec, "no_input") if "no_input" in spec else (),
            no_match=self.texts(spec, "no_match") if "no_match" in spec else (),
            max_attempts=attempts, on_fail=as_text(spec.get("on_fail")), no_input_ms=timeout,
            assign=self.assign(spec) if "set" in spec else (),
            next=self.routes(spec), http=self.http(spec, "http") if "http" in spec else None,
            on_error=as_text(spec.get("on_error")), run=as_text(spec.get("run")),
            returns=self.flag(spec, "return", False),
            transfer=self.transfer(spec) if "transfer" in spec else None, hangup=self.flag(spec, "hangup", False),
            queue=build_queue(self, spec) if "queue" in spec else None,
            language_menu=languages.build_menu(self, spec) if "language" in spec else (),
            file=str(self.p.path), key_pos={**spec.key_pos, "": (spec.line, spec.col)},
        )
        self.check_shape(name, spec, step)
        return step

    def check_shape(self, name: str, spec: LineDict, step: Step) -> None:
        kinds = [k for k in ("ask", "http", "run", "return", "transfer", "hangup", "queue", "language")
                 if spec.get(k)]
        has_next = bool(step.next) or "next" in spec or "goto" in spec
        if len(kinds) > 1:
            self.p.error(spec, kinds[1], f"step '{name}' has both '{kinds[0]}' and '{kinds[1]}'",
                         "a step either listens, calls a service, runs a subflow, transfers, queues or hangs up")
        elif not kinds and not has_next:
            self.p.error(spec, None, f"step '{name}' does not say where the call goes next",
                         "add ask, next, transfer, hangup or return")
        elif kinds and kinds[0] in ("http", "run", "language") and not has_next:
            self.p.error(spec, kinds[0], f"step '{name}' needs 'next' (where to go after '{kinds[0]}')")
        elif kinds and kinds[0] == "ask" and step.collect and not has_next:
            self.p.error(spec, "collect", f"step '{name}' collects '{step.collect.slot.name}' but has no 'next'",
                         "add next: STEP for when the value is known")
        elif kinds and kinds[0] == "ask" and has_next and not step.collect:
            self.p.error(spec, "next", f"step '{name}' listens for choices; 'next' is never used",
                         "give each choice a goto")
        elif kinds and kinds[0] in ("return", "transfer", "hangup", "queue") and has_next:
            self.p.error(spec, "next", f"step '{name}' ends with '{kinds[0]}'; 'next' is never used")
        if "ask" in spec and not any(k in spec for k in ("choices", "collect", "faq")):
            self.p.error(spec, "ask", f"step '{name}' asks but expects nothing",
                         "add choices, collect, or faq: true")

    def _confirm(self, spec: LineDict) -> Template | None:
        value = languages.localized(self, spec, "confirm")
        languages.check_plain(self, spec, "confirm")
        return self.template(spec, "confirm", value) if value is not None else None

    def collect(self, spec: LineDict) -> Collect | None:
        data = spec["collect"]
        if not isinstance(data, LineDict) or "slot" not in data or "type" not in data:
            self.p.error(spec, "collect", "'collect' needs slot: NAME and type: TYPE",
                         "types: " + ", ".join(SLOT_TYPES))
            return None
        self.p.check_keys(data, COLLECT_KEYS, "collect")
        slot = SlotSpec(name=str(data["slot"]), type=str(data["type"]),
                        **{k: data[k] for k in ("length", "min_length", "max_length", "min", "max", "currency")
                           if k in data})
        for problem in check_spec(slot):
            self.p.error(data, "type" if "type" in problem else None, problem)
        if not _NAME.match(slot.name) or slot.name in RESERVED_NAMES:
            self.p.error(data, "slot", f"'{slot.name}' cannot be a slot name", "use letters, digits and _")
        keyed = slot.type in ("digits", "number", "money", "phone", "date", "time")
        default_max = (slot.length or slot.max_length or 20) if keyed else 1
        max_digits = data.get("max_digits", default_max)
        inter = self.duration(data, "inter_digit_timeout", model.DEFAULT_INTER_DIGIT_MS)
        term = str(data.get("terminator", "#"))
        if term and term not in DTMF_KEYS:
            self.p.error(data, "terminator", f"'{term}' is not a keypad key", "use # or *")
        return Collect(slot, None, self.flag(data, "sensitive", False), int(max_digits),
                       slot.length or slot.min_length or 1, term, inter)

    def http(self, where: LineDict, key: str) -> HttpSpec | None:
        data = where[key]
        if not isinstance(data, LineDict):
            self.p.error(where, key, f"'{key}' must be a mapping like {{get: URL, save: NAME}}")
            return None
        self.p.check_keys(data, HTTP_KEYS, key)
        methods = [m for m in HTTP_METHODS if m in data]
        if len(methods) != 1:
            self.p.error(data, None, f"'{key}' needs exactly one of " + ", ".join(HTTP_METHODS) + " with the URL")
            return None
        url = self.template(data, methods[0], data[methods[0]], "url")
        timeout = self.duration(data, "timeout", 3000)
        retries = data.get("retries", 0)
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 5:
            self.p.error(data, "retries", "'retries' must be a whole number from 0 to 5")
            retries = 0
        headers = data.get("headers") or {}
        if not isinstance(headers, dict):
            self.p.error(data, "headers", "'headers' must map header names to values")
            headers = {}
        save = data.get("save")
        if save is not None and (not _NAME.match(str(save)) or str(save) in RESERVED_NAMES):
            self.p.error(data, "save", f"'{save}' cannot be a name to save into", "use letters, digits and _")
            save = None
        hdrs = tuple((str(k), t) for k, t in ((k, self.template(headers, k, str(v))) for k, v in headers.items()) if t)
        if url is None:
            return None
        return HttpSpec(methods[0].upper(), url, hdrs, self.value(data, "json", data.get("json")), timeout,
                        retries, str(save) if save else None)

    def transfer(self, spec: LineDict) -> TransferSpec | None:
        value = spec["transfer"]
        if isinstance(value, str):
            to = self.template(spec, "transfer", value, "url")
            return TransferSpec(to) if to else None
        if not isinstance(value, LineDict) or not isinstance(value.get("to"), str):
            self.p.error(spec, "transfer", "'transfer' must be a target like sip:agents@host or {to: ..., reason: ...}")
            return None
        self.p.check_keys(value, TRANSFER_KEYS, "transfer")
        context = value.get("context") or {}
        if not isinstance(context, dict):
            self.p.error(value, "context", "'context' must map names to values shown to the agent")
            context = {}
        ctx = tuple((str(k), t) for k, t in ((k, self.template(context, k, str(v))) for k, v in context.items()) if t)
        said = languages.localized(self, value, "reason") if "reason" in value else None
        reason = self.template(value, "reason", str(said)) if said is not None else None
        to = self.template(value, "to", value["to"], "url")
        return TransferSpec(to, reason, ctx) if to else None

    def sentences(self, spec: LineDict, key: str) -> tuple[str, ...]:
        """A choice's `examples:` / `not:`: whole sentences callers say (scored by meaning), normalised."""
        value = (languages.localized(self, spec, key) if key in spec else None) or []
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and normalize(v) for v in value):
            self.p.error(spec, key, f"'{key}' must be a list of sentences", f'e.g. {key}: ["my parcel never came"]')
            return ()
        return tuple(dict.fromkeys(normalize(v) for v in value))

    def builtin(self, spec: LineDict) -> builtins.Builtin | None:
        """A choice's `builtin: NAME`: that built-in intent (yes, agent, ...) or library intent (retail.track_order)
        in the flow's language (ivr.flow.builtins), or None (an unknown name is an error; a language without it
        a warning)."""
        name, known_names = spec["builtin"], builtins.names()
        if not isinstance(name, str) or name not in known_names:
            close = difflib.get_close_matches(str(name), known_names, n=1, cutoff=0.6)
            self.p.error(spec, "builtin", f"unknown built-in intent {name!r}",
                         f"did you mean '{close[0]}'?" if close else
                         "built-in intents: " + ", ".join(builtins.NAMES) + "; the intent library: domain.intent, "
                         "e.g. retail.track_order (docs/flows.md lists them)")
            return None
        base = lang.base_language(self.language)
        known = builtins.find(base, name)
        if known is None:
            self.p.warn(spec, "builtin", f"no built-in intent '{name}' for language '{base}': it hears only its own "
                        "say:", "built-in intents exist for " + ", ".join(builtins.languages()))
        return known

    def choices(self, data, what: str, is_global: bool = False, where=None, key=None) -> list[Choice]:
        if not data:
            return []
        if not isinstance(data, LineDict):
            self.p.error(where, key, f"choices of {what} must be a mapping of name to choice")
            return []
        out = []
        for name, spec in data.items():
            if not isinstance(spec, LineDict):
                self.p.error(data, name, f"choice '{name}' in {what} must be a mapping with say/dtmf/goto")
                continue
            self.p.check_keys(spec, CHOICE_KEYS, f"choice '{name}'")
            phrases: list[str] = []
            templates = (languages.localized(self, spec, "say") if "say" in spec else None) or []
            for template in templates if isinstance(templates, list) else [templates]:
                try:
                    phrases += expand(str(template))
                except TemplateError as exc:
                    self.p.error(spec, "say", f"bad sentence template: {exc}",
                                 "use (a|b) for choices and [x] for optional words")
            dtmf = str(spec.get("dtmf", "")) if spec.get("dtmf") is not None else ""
            if any(k not in DTMF_KEYS for k in dtmf):
                self.p.error(spec, "dtmf", f"'{dtmf}' is not a keypad key", "use 0-9, * or #, quoted: \"1\"")
            action = spec.get("action")
            if action is not None and (not is_global or action not in GLOBAL_ACTIONS):
                self.p.error(spec, "action", f"unknown action '{action}'",
                             "global choices may use action: repeat or action: hangup")
            if not spec.get("goto") and not action:
                self.p.error(spec, None, f"choice '{name}' in {what} has no 'goto'", "add goto: STEP")
            intent = Intent(str(name), tuple(phrases), self.sentences(spec, "examples"), self.sentences(spec, "not"))
            known = self.builtin(spec) if "builtin" in spec else None
            intent = builtins.merge(intent, known) if known else intent
            if not intent.phrases and not dtmf:
                self.p.error(spec, None, f"choice '{name}' in {what} has neither 'say' nor 'dtmf'",
                             "" if "say" in spec else "add say: [...], or builtin: NAME for a built-in intent")
            label = (languages.localized(self, spec, "label") if "label" in spec else None) or ""
            label = str(label or (intent.phrases[0] if intent.phrases else name))
            out.append(Choice(str(name), intent, dtmf, as_text(spec.get("goto")),
                              action, label, spec.line, spec.key_pos.get("goto", (spec.line, spec.col)),
                              self.assign(spec) if "set" in spec else ()))
        return out
