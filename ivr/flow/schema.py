"""`ivr schema`: a JSON Schema (draft 2020-12) of flow files, for editors that complete and check YAML.

Put `# yaml-language-server: $schema=./flow.schema.json` at the top of a flow file (VS Code's
YAML extension) to get completion, a one-line description of every key, and red underlines.
That extension understands JSON Schema up to draft 7, so `schema_for(draft="7")` says the same
in draft-07 words; the default is draft 2020-12.
The key sets come from the loader itself (TOP_KEYS, STEP_KEYS, ...), and the tests compare
them, so the schema cannot drift from what `ivr validate` accepts. The schema checks shape
only; targets, reachability and templates are `ivr validate`'s job.
"""

import json
from pathlib import Path

from ivr.errors import UserError
from ivr.flow import builtins, knowledge
from ivr.flow.hours import DAYS
from ivr.flow.loader import SUBFLOW_KEYS, TOP_KEYS
from ivr.flow.queue_step import QUEUE_KEYS
from ivr.flow.slots import SLOT_TYPES
from ivr.flow.steps import (
    CHOICE_KEYS,
    COLLECT_KEYS,
    GLOBAL_ACTIONS,
    HTTP_KEYS,
    HTTP_METHODS,
    RESERVED_NAMES,
    STEP_KEYS,
    TRANSFER_KEYS,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
# Written out in hours.py and loader.py rather than exported; tests check them against the parsers.
HOURS_KEYS = ("timezone", "open", "holidays", "subdivision", "closed")
NLU_KEYS = ("accept", "confirm", "faq", "faq_margin")
BRANCH_KEYS = ("if", "goto")

_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DURATION = {"description": "a duration with its unit: 5s, 1.5s, 4000ms, 1m (a bare number is refused)",
             "type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|min|h)\s*$"}
_TIME = r"T?\d{2}(:?\d{2}(:?\d{2}(\.\d+)?)?)?"           # what time.fromisoformat reads
_TIME_RANGE = rf"^\s*{_TIME}\s*-\s*{_TIME}\s*$"
_DAY = "(" + "|".join("".join(f"[{c}{c.upper()}]" for c in day) for day in DAYS) + ")"   # any case
_DAYS = rf"^\s*{_DAY}(\s*-\s*{_DAY})?(\s*,\s*{_DAY}(\s*-\s*{_DAY})?)*\s*$"
_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "a date like 2026-12-24"}
# A language key of a `{en: ..., zh: ...}` map (ivr.lang reads it; the loader names a wrong one).
_LANG_KEY = r"^([A-Za-z]{2,3}|[Ee]nglish|[Mm]andarin|[Cc]hinese|[Pp]utonghua|[Kk]orean)([-_][A-Za-z0-9]+)*$"


def per_language(schema: dict, or_plain: bool = True) -> dict:
    """`schema`, or (a flow with several languages) a map of language -> `schema`."""
    mapped = {"type": "object", "minProperties": 1, "propertyNames": {"pattern": _LANG_KEY},
              "additionalProperties": schema}
    return {"anyOf": [schema, mapped]} if or_plain else mapped


def ref(name: str, description: str) -> dict:
    return {"$ref": f"#/$defs/{name}", "description": description}


def typed(description: str, **schema) -> dict:
    return {"description": description, **schema}


def variable_names() -> dict:
    return {"pattern": _NAME, "not": {"enum": sorted(RESERVED_NAMES)}}


def _object(props: dict, **extra) -> dict:
    return {"type": "object", "properties": props, "additionalProperties": False, **extra}


def keyed(keys, docs: dict) -> dict:
    """Properties for exactly the loader's `keys`: documented ones in `docs` order, then any new key.

    A key the loader gained but this file does not describe yet is still accepted (the test
    suite flags it); a described key the loader dropped is left out.
    """
    known = {k: v for k, v in docs.items() if k in keys}
    return known | {k: {"description": f"{k} (not described yet)"} for k in sorted(set(keys) - set(known))}


STEP_PROPS = {
    "say": ref("texts", 'What the step says first: text or a list of texts, e.g. say: "Thanks for calling."'),
    "audio": typed("A recorded WAV played instead of synthesising the first 'say' text, e.g. audio: "
                   "prompts/welcome.wav (relative to the flow file)", type="string"),
    "ask": ref("texts", 'The question; the step then listens for its choices, slot or FAQ (a list of sentences '
                        'makes one question), e.g. ask: "Say track or press 1."'),
    "barge_in": typed("Whether the caller may interrupt this step's prompts (default true), e.g. barge_in: false",
                      type="boolean"),
    "choices": ref("choices", "Answers this step understands, by speech or key, e.g. {track: {say: [\"track [my] "
                              "order\"], dtmf: \"1\", goto: track}}"),
    "collect": ref("collect", "A value to collect into slots.NAME, e.g. collect: {slot: order_id, type: digits, "
                              "length: 6}"),
    "confirm": {"description": 'A yes/no question after the slot is heard, e.g. confirm: "That\'s {{ slots.order_id '
                               '| digits }}. Right?"', **per_language({"type": "string", "minLength": 1})},
    "faq": typed("Answer questions from the flow's knowledge base at this step, e.g. faq: true", type="boolean"),
    "after_faq": ref("step_name", "Where to go after a knowledge-base answer (default: ask again), e.g. after_faq: "
                                  "anything_else"),
    "no_input": ref("texts", 'Re-prompts after silence, one per attempt (the last repeats), e.g. ["Sorry, I didn\'t '
                             'hear you."]'),
    "no_match": ref("texts", 'Re-prompts after an answer not understood, e.g. ["Sorry, I didn\'t catch that."]'),
    "max_attempts": typed("Failed inputs (no-input + no-match) before on_fail (default 3), e.g. max_attempts: 3",
                          type="integer", minimum=1),
    "on_fail": ref("step_name", "Where to go after max_attempts failed inputs (default: the agent line), e.g. "
                                "on_fail: to_agent"),
    "no_input_timeout": {**_DURATION, "description": "Silence before a no-input (default 5s), e.g. "
                                                     "no_input_timeout: 4s"},
    "set": typed('Variables to set when the step starts; on a step that collects a slot, once the value is '
                 'known (so it may read it), e.g. set: {tries: "{{ tries + 1 }}", vip: true}',
                 type="object", propertyNames=variable_names()),
    "next": ref("next", "Where to go after this step: a step name or branches, e.g. [{if: \"open\", goto: menu}, "
                        "{goto: closed}]"),
    "goto": ref("next", "Same as next, e.g. goto: main"),
    "http": ref("http", 'Call a service, e.g. http: {get: "{{ env.ORDERS_API }}/orders/{{ slots.order_id }}", '
                        "save: order}"),
    "on_error": ref("step_name", "Where to go when the HTTP call fails or times out, e.g. on_error: to_agent"),
    "run": typed("A subflow to run (declared under subflows); 'next' continues after it returns, e.g. run: "
                 "verify", type="string", minLength=1),
    "return": typed("End of a subflow step: go back to the caller's next, e.g. return: true", type="boolean"),
    "transfer": ref("transfer", 'Transfer the call, e.g. transfer: {to: "{{ agent_line }}", reason: billing} or '
                                "transfer: sip:agents@host"),
    "hangup": typed("Hang up after this step's prompts, e.g. hangup: true", type="boolean"),
    "queue": ref("queue", 'Wait for an agent, e.g. queue: {name: support, hold_music: hold.wav, max_wait: 5m, '
                          'callback_key: "1", on_timeout: voicemail, on_empty: closed}'),
    "language": ref("language_menu", 'The caller picks the call\'s language by key or first words, e.g. language: '
                                     '[en-US, zh-CN] or language: {en: {dtmf: "1"}, zh: {dtmf: "2"}}'),
}

CHOICE_PROPS = {
    "say": ref("texts", 'Sentence templates that pick this choice: (a|b) alternatives, [x] optional, e.g. '
                        '["track [my] order"]'),
    "dtmf": typed('Keypad key(s) that pick this choice, quoted, e.g. dtmf: "1"',
                  anyOf=[{"type": "string", "pattern": r"^[0-9*#A-D]+$"}, {"type": "integer", "minimum": 0}]),
    "goto": ref("step_name", "The step this choice leads to, e.g. goto: track"),
    "action": typed("Instead of goto (global choices only): repeat the prompt or hang up, e.g. action: repeat",
                    enum=sorted(GLOBAL_ACTIONS)),
    "set": typed('Variables to set when this choice is taken, e.g. set: {topic: billing}', type="object",
                 propertyNames=variable_names()),
    "label": {"description": 'How "Did you mean ...?" names this choice (default: its first phrase), e.g. label: '
                             '"order tracking"', **per_language({"type": "string"})},
    "examples": {"description": 'Whole sentences callers said for this choice, matched by meaning (not word for '
                                'word), e.g. examples: ["is my order on the way"]',
                 **per_language({"type": "array", "items": {"type": "string", "minLength": 1}})},
    "builtin": typed("A built-in intent (yes, no, agent, ...) or library intent (domain.intent) whose many ways of "
                     "saying it (and, without say:, its short phrases) this choice hears too, e.g. builtin: agent, "
                     "builtin: retail.track_order", enum=list(builtins.names())),
    "not": {"description": 'Sentences this choice must NOT match (the FAQ or another step answers them), e.g. '
                           'not: ["what is your return policy"]',
            **per_language({"type": "array", "items": {"type": "string", "minLength": 1}})},
}

COLLECT_PROPS = {
    "slot": typed("The slot's name; the value is then slots.NAME, e.g. slot: order_id", type="string",
                  **variable_names()),
    "type": typed("What kind of value: " + ", ".join(SLOT_TYPES) + ", e.g. type: digits", enum=list(SLOT_TYPES)),
    "length": typed("Exact number of digits (digits, phone), e.g. length: 6", type="integer", minimum=1),
    "min_length": typed("Fewest digits accepted (digits, phone), e.g. min_length: 4", type="integer", minimum=1),
    "max_length": typed("Most digits accepted (digits, phone), e.g. max_length: 12", type="integer", minimum=1),
    "min": typed("Smallest value accepted (number, money), e.g. min: 1", type="number"),
    "max": typed("Largest value accepted (number, money), e.g. max: 500", type="number"),
    "currency": typed("Default currency of a money slot (ISO 4217), e.g. currency: USD", type="string",
                      pattern="^[A-Z]{3}$"),
    "sensitive": typed("Mask the value in traces, logs and agent context (cards, PINs), e.g. sensitive: true",
                       type="boolean"),
    "terminator": typed('The key that ends keypad entry (default "#", "" for none), e.g. terminator: "#"',
                        type="string", pattern=r"^[0-9*#A-D]?$"),
    "inter_digit_timeout": {**_DURATION, "description": "Pause between keys that ends entry (default 3s), e.g. "
                                                        "inter_digit_timeout: 3s"},
    "max_digits": typed("Most keys taken before entry ends (default: the slot's length), e.g. max_digits: 6",
                        type="integer", minimum=1),
}

HTTP_PROPS = {
    **{m: typed(f'{m.upper()} this URL (a template; values are URL-escaped), e.g. {m}: "{{{{ env.API }}}}/orders/'
                '{{ slots.order_id }}"', type="string", minLength=1) for m in HTTP_METHODS},
    "headers": typed('Request headers (templates), e.g. headers: {Authorization: "Bearer {{ env.TOKEN }}"}',
                     type="object", additionalProperties={"type": ["string", "number", "boolean"]}),
    "json": typed('A JSON body whose strings are templates, e.g. json: {order: "{{ slots.order_id }}"}'),
    "timeout": {**_DURATION, "description": "How long to wait for the answer (default 3s), e.g. timeout: 2s"},
    "retries": typed("Retries after a failure, 0 to 5 (default 0), e.g. retries: 1", type="integer",
                     minimum=0, maximum=5),
    "save": typed("Save the JSON answer under this name for later templates, e.g. save: order", type="string",
                  **variable_names()),
}

TRANSFER_PROPS = {
    "to": typed('Where to transfer (a template), e.g. to: "{{ agent_line }}" or sip:billing@127.0.0.1',
                type="string", minLength=1),
    "reason": {"description": 'Why, shown to the agent (a template, or one per language), e.g. reason: '
                              '"{{ last.intent }}"', **per_language({"type": ["string", "number"]})},
    "context": typed('Name/value pairs shown to the agent (templates), e.g. context: {order: "{{ slots.order_id }}"}',
                     type="object"),
}

QUEUE_PROPS = {
    "name": typed("The queue's name (agents see it), e.g. name: support", type="string",
                  pattern=r"^[A-Za-z0-9_.-]{1,64}$"),
    "hold_music": typed("A WAV file looped while the caller waits (relative to the flow), e.g. hold_music: hold.wav",
                        type="string", minLength=1),
    "announce_every": {**_DURATION, "description": "Say the position and wait this often (default 30s), "
                                                   "e.g. announce_every: 1m"},
    "max_wait": {**_DURATION, "description": "Give up waiting after this long: on_timeout (default 5m), "
                                             "e.g. max_wait: 10m"},
    "callback_after": {**_DURATION, "description": "Offer a callback in the announcements after this wait, "
                                                   "e.g. callback_after: 2m"},
    "callback_key": typed('The key that asks for a callback, e.g. callback_key: "1"', type=["string", "integer"]),
    "reason": typed('Why the caller waits, shown to the agent (a template), e.g. reason: "{{ last.choice }}"',
                    type=["string", "number"]),
    "on_timeout": ref("step_name", "Where to go after max_wait, e.g. on_timeout: voicemail"),
    "on_empty": ref("step_name", "Where to go when no agent is logged in, e.g. on_empty: closed"),
    "on_callback": ref("step_name", "Where to go once a callback is stored, e.g. on_callback: goodbye"),
}

HOURS_PROPS = {
    "timezone": typed("IANA time zone of the opening hours (default UTC), e.g. timezone: Asia/Shanghai",
                      type="string"),
    "open": typed('Opening times per day or day range, e.g. open: {mon-fri: "09:00-18:00", sat: "10:00-16:00"}',
                  type="object", propertyNames={"pattern": _DAYS},
                  additionalProperties={"anyOf": [{"type": "string", "pattern": _TIME_RANGE},
                                                  {"type": "array", "items": {"type": "string",
                                                                              "pattern": _TIME_RANGE}}]}),
    "holidays": typed("Public holidays: a country code or a list of dates, e.g. holidays: CN",
                      anyOf=[{"type": "string", "pattern": "^[A-Za-z]{2,3}$"}, {"type": "array", "items": _DATE}]),
    "subdivision": typed("A region of the holiday country, e.g. subdivision: CA", type="string"),
    "closed": typed('Extra closed days, e.g. closed: ["2026-12-24"]', type="array", items=_DATE),
}

NLU_PROPS = {
    "accept": typed("A match at least this good takes the answer, 0-1 (default 0.8), e.g. accept: 0.8",
                    type="number", exclusiveMinimum=0, maximum=1),
    "confirm": typed('Between this and accept: "Did you mean ...?" (default 0.6), e.g. confirm: 0.6',
                     type="number", exclusiveMinimum=0, maximum=1),
    "faq": typed("The knowledge base answers at or above this score, 0-1 (default: its own, 0.7), e.g. faq: 0.75",
                 type="number", exclusiveMinimum=0, maximum=1),
    "faq_margin": typed("A FAQ answer must beat the step's best choice by this much (default 0.1), e.g. "
                        "faq_margin: 0.1", type="number", minimum=0, maximum=1),
}

TOP_PROPS = {
    "name": typed("The flow's name (default: the file name), e.g. name: acme-hotline", type="string"),
    "language": typed("Language of callers and prompts; picks ASR model and defaults, e.g. language: zh-CN",
                      type="string", minLength=2),
    "languages": typed("The languages of a flow with several, the default first; texts then may be maps like "
                       '{en: "...", zh: "..."}, e.g. languages: [en-US, zh-CN]', type="array", minItems=1,
                       items={"type": "string", "minLength": 2}),
    "voice": typed("Text-to-speech voice (or one per language), e.g. voice: piper, espeak:cmn, {engine: piper, "
                   'name: en_US-joe-medium} or {en: piper, zh: "espeak:cmn"}',
                   anyOf=[{"type": "string"}, {"type": "object", "properties": {
                       "engine": typed("TTS engine, e.g. engine: piper", type="string"),
                       "name": typed("The engine's voice, e.g. name: en_US-joe-medium", type="string")},
                       "additionalProperties": False},
                       per_language({"type": "string"}, or_plain=False)]),
    "agent_line": typed("Where agent transfers and failures go, e.g. agent_line: sip:agents@127.0.0.1:5080",
                        type=["string", "integer"]),
    "globals": ref("global_choices", 'Intents heard at every listening step, e.g. agent: {say: ["agent"], dtmf: '
                                     '"0", goto: to_agent}'),
    "start": ref("step_name", "The first step (default: the first one listed), e.g. start: greet"),
    "on_error": ref("step_name", "Where a call goes when a template or a service fails mid-call (default: the "
                                 "agent line); that step sees error.what, error.kind, error.step, e.g. on_error: "
                                 "sorry"),
    "steps": ref("steps", "The steps, by name, e.g. greet: {say: \"Hello.\", next: main}"),
    "knowledge": {"description": "A knowledge-base file of questions and answers for faq steps (or one per "
                                 "language), e.g. knowledge: faq/retail_en.yaml",
                  **per_language({"type": "string", "minLength": 1})},
    "hours": {"description": 'Business hours for conditions like {if: "open"} (or one per language: each '
                             'language\'s agents), e.g. hours: {timezone: Asia/Shanghai, open: {mon-fri: '
                             '"09:00-18:00"}}',
              **per_language({"type": "object", "properties": keyed(HOURS_KEYS, HOURS_PROPS),
                              "additionalProperties": False})},
    "caller_lookup": ref("http", 'An HTTP call when the call starts; its answer is caller.*, e.g. {get: '
                                 '"{{ env.CRM }}/callers/{{ call.caller_id }}"}'),
    "vars": typed("Variables and their starting values, e.g. vars: {tries: 0, vip: false}", type="object",
                  propertyNames={"not": {"enum": sorted(RESERVED_NAMES)}}),
    "subflows": typed("Reusable pieces in other files, run with run: NAME, e.g. subflows: {verify: "
                      "sub/verify.yaml}", type="object", propertyNames={"pattern": "^[^/]+$"},
                      additionalProperties={"type": "string", "minLength": 1}),
    "nlu": typed("Match thresholds for speech answers, e.g. nlu: {accept: 0.8, confirm: 0.6}", type="object",
                 properties=keyed(NLU_KEYS, NLU_PROPS), additionalProperties=False),
    "watch": typed('Conditions tested after every caller utterance, first true wins, e.g. watch: [{if: '
                   '"sentiment.negative_turns >= 2", goto: to_agent}]', type="array",
                   items={"allOf": [{"$ref": "#/$defs/branch"}, {"required": ["if"]}]}),
}


KNOWLEDGE_PROPS = {
    "language": typed("Language of the questions and answers, e.g. language: zh-CN", type="string", minLength=2),
    "faqs": typed("The entries: how callers ask, what the machine answers, e.g. - {id: hours, questions: [...], "
                  "answer: ...}", type="array", minItems=1,
                  items={"$ref": "#/$defs/faq"}),
}
FAQ_PROPS = {
    "id": typed("A unique name of the entry, shown in traces, e.g. id: return_policy", type="string", minLength=1),
    "questions": ref("texts", 'How callers ask, as sentence templates, e.g. ["can I return (an|my) item"]'),
    "answer": typed('What the machine says, e.g. answer: "You can return any item within 30 days."',
                    type="string", minLength=1),
}


def _defs() -> dict:
    step_choice = {**CHOICE_PROPS, "action": {"description": "Global choices only (not in a step's choices), e.g. "
                                                             "action: repeat", "not": {}}}
    needs_say_or_dtmf = {"anyOf": [{"required": ["say"]}, {"required": ["dtmf"]}]}
    return {
        "step_name": {"type": ["string", "integer"], "description": "the name of a step"},
        "texts": per_language({"anyOf": [{"type": "string", "minLength": 1},
                                         {"type": "array", "items": {"type": "string", "minLength": 1},
                                          "minItems": 1}]}),
        "language_menu": {"anyOf": [
            {"type": "array", "minItems": 2, "items": {"type": "string", "minLength": 2}},
            per_language(_object({
                "say": typed('This language\'s part of the menu, said in its voice, e.g. say: "For English, '
                             'press 1."', type="string", minLength=1),
                "dtmf": typed('The key that picks it (default: its place, 1, 2, ...), e.g. dtmf: "1"',
                              type=["string", "integer"]),
                "words": typed("Words that pick it when said (default: the language's names), e.g. words: "
                               "[english]", type="array", items={"type": "string", "minLength": 1})}),
                or_plain=False)]},
        "choice": _object(keyed(CHOICE_KEYS, step_choice), required=["goto"], allOf=[needs_say_or_dtmf]),
        "global_choice": _object(keyed(CHOICE_KEYS, CHOICE_PROPS), allOf=[
            needs_say_or_dtmf, {"anyOf": [{"required": ["goto"]}, {"required": ["action"]}]}]),
        "choices": {"type": "object", "additionalProperties": {"$ref": "#/$defs/choice"}},
        "global_choices": {"type": "object", "additionalProperties": {"$ref": "#/$defs/global_choice"}},
        "collect": _object(keyed(COLLECT_KEYS, COLLECT_PROPS), required=["slot", "type"]),
        "http": _object(keyed(HTTP_KEYS, HTTP_PROPS), oneOf=[{"required": [m]} for m in HTTP_METHODS]),
        "transfer": {"anyOf": [{"type": "string", "minLength": 1},
                               _object(keyed(TRANSFER_KEYS, TRANSFER_PROPS), required=["to"])]},
        "queue": {"anyOf": [{"type": "string", "minLength": 1},
                            _object(keyed(QUEUE_KEYS, QUEUE_PROPS), required=["name"])]},
        "branch": _object({"if": typed('A condition, e.g. if: "order.status == \'shipped\'"',
                                       type=["string", "boolean", "number"]),
                           "goto": ref("step_name", "The step to go to when the condition holds, e.g. goto: "
                                                    "shipped")}, required=["goto"]),
        "next": {"anyOf": [{"$ref": "#/$defs/step_name"},
                           {"type": "array", "minItems": 1,
                            "items": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/branch"}]}}]},
        # A step with choices, a slot or FAQ answers must ask; confirm belongs to collect.
        "step": _object(keyed(STEP_KEYS, STEP_PROPS), dependentRequired={
            "choices": ["ask"], "collect": ["ask"], "faq": ["ask"], "confirm": ["collect"]}),
        "steps": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": "^[^/]+$"},
                  "additionalProperties": {"$ref": "#/$defs/step"}},
    }


def flow_schema() -> dict:
    """The JSON Schema of a flow file."""
    return {
        "$schema": DRAFT,
        "$id": "urn:ivr:flow",
        "$comment": "Generated by `ivr schema` from the loader's key sets; regenerate it rather than edit it.",
        "title": "ivr call flow",
        "description": "A YAML call flow for ivr: steps that say, ask, call services, transfer and hang up.",
        **_object(keyed(TOP_KEYS, TOP_PROPS), required=["steps"]),
        "$defs": _defs(),
    }


def subflow_schema() -> dict:
    """The JSON Schema of a subflow file (a flow's steps without its call-wide settings)."""
    schema = flow_schema()
    schema.update({"$id": "urn:ivr:subflow", "title": "ivr subflow",
                   "description": "A reusable piece of a flow, run by a step with run: NAME."})
    schema["properties"] = keyed(SUBFLOW_KEYS, TOP_PROPS)
    return schema


def knowledge_schema() -> dict:
    """The JSON Schema of a knowledge-base (FAQ) file."""
    return {
        "$schema": DRAFT, "$id": "urn:ivr:knowledge", "title": "ivr knowledge base",
        "description": "Questions callers ask and the answers a step with faq: true may give.",
        **_object(keyed(knowledge.TOP_KEYS, KNOWLEDGE_PROPS), required=["faqs"]),
        "$defs": {"texts": _defs()["texts"]["anyOf"][0],
                  "faq": _object(keyed(knowledge.ENTRY_KEYS, FAQ_PROPS), required=["id", "questions", "answer"])},
    }


SCHEMAS = {"flow": flow_schema, "subflow": subflow_schema, "knowledge": knowledge_schema}
DRAFTS = ("2020-12", "7")


def as_draft7(node):
    """The same schema in draft-07 words, for editors that stop at draft 7 (VS Code's YAML extension).

    Only three words differ in what this module uses: $defs, dependentRequired and $schema.
    """
    if isinstance(node, list):
        return [as_draft7(v) for v in node]
    if not isinstance(node, dict):
        return node
    words = {"$defs": "definitions", "dependentRequired": "dependencies"}
    out = {words.get(k, k): as_draft7(v) for k, v in node.items()}
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace("#/$defs/", "#/definitions/")
    if "$schema" in out:
        out["$schema"] = DRAFT7
    return out


def schema_for(kind: str = "flow", draft: str = "2020-12") -> dict:
    """A schema by kind (flow, subflow, knowledge) and draft (2020-12, or 7 for VS Code's YAML extension)."""
    if kind not in SCHEMAS:
        raise UserError(f"no schema for '{kind}'", "choose " + ", ".join(SCHEMAS))
    if draft not in DRAFTS:
        raise UserError(f"no JSON Schema draft '{draft}'", "choose 2020-12 or 7")
    schema = SCHEMAS[kind]()
    return as_draft7(schema) if draft == "7" else schema


def schema_text(kind: str = "flow", draft: str = "2020-12") -> str:
    """A schema as JSON text (UTF-8, stable key order), for `ivr schema`."""
    return json.dumps(schema_for(kind, draft), indent=2, ensure_ascii=False) + "\n"


def write_schema(out: Path, kind: str = "flow", draft: str = "2020-12") -> Path:
    out = Path(out)
    text = schema_text(kind, draft)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}", "check that the folder exists") from exc
    return out
