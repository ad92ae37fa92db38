"""The JSON Schema of flow files: it matches the loader's key sets, accepts every shipped flow,
and rejects (and accepts) the same documents the loader does."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from ivr.flow import knowledge, languages, loader, steps
from ivr.flow.hours import HoursError, parse_hours
from ivr.flow.loader import FlowError, load_flow
from ivr.flow.schema import (
    BRANCH_KEYS,
    HOURS_KEYS,
    NLU_KEYS,
    flow_schema,
    knowledge_schema,
    schema_for,
    schema_text,
    subflow_schema,
    write_schema,
)
from ivr.flow.slots import SLOT_TYPES
from ivr.flow.yamlsrc import read_yaml

jsonschema = pytest.importorskip("jsonschema")   # a dev dependency: pip install jsonschema
ROOT = Path(__file__).resolve().parent.parent
SCHEMA = flow_schema()
DEFS = SCHEMA["$defs"]


def validator(schema: dict):
    """A validator of the schema's own draft (2020-12, or 7)."""
    return jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())


def errors(doc, schema: dict = SCHEMA) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(schema).iter_errors(doc)]


def as_editor_sees(data):
    """YAML data as JSON (what an editor validates): dates and other scalars become text."""
    return json.loads(json.dumps(data, default=str))


# ---- the schema follows the code --------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_7():
    for kind in ("flow", "subflow", "knowledge"):
        jsonschema.Draft202012Validator.check_schema(schema_for(kind))
        jsonschema.Draft7Validator.check_schema(schema_for(kind, "7"))
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(schema_text()) == SCHEMA
    draft7 = schema_text("flow", "7")
    assert '"definitions"' in draft7 and "$defs" not in draft7 and "dependentRequired" not in draft7


@pytest.mark.parametrize(("where", "keys"), [
    (SCHEMA, loader.TOP_KEYS),
    (subflow_schema(), loader.SUBFLOW_KEYS),
    (DEFS["step"], steps.STEP_KEYS),
    (DEFS["choice"], steps.CHOICE_KEYS),
    (DEFS["global_choice"], steps.CHOICE_KEYS),
    (DEFS["collect"], steps.COLLECT_KEYS),
    (DEFS["http"], steps.HTTP_KEYS),
    (DEFS["transfer"]["anyOf"][1], steps.TRANSFER_KEYS),
    (DEFS["branch"], set(BRANCH_KEYS)),
    (SCHEMA["properties"]["hours"]["anyOf"][0], set(HOURS_KEYS)),              # or one per language
    (DEFS["language_menu"]["anyOf"][1]["additionalProperties"], languages.OPTION_KEYS),
    (SCHEMA["properties"]["nlu"], set(NLU_KEYS)),
    (knowledge_schema(), knowledge.TOP_KEYS),
    (knowledge_schema()["$defs"]["faq"], knowledge.ENTRY_KEYS),
])
def test_property_names_are_the_loaders_key_sets(where, keys):
    assert set(where["properties"]) == set(keys)
    assert where["additionalProperties"] is False
    undescribed = [k for k, v in where["properties"].items() if "not described yet" in v["description"]]
    assert not undescribed, f"describe these new keys in ivr/flow/schema.py: {undescribed}"


def test_enums_follow_the_code():
    assert DEFS["collect"]["properties"]["type"]["enum"] == list(SLOT_TYPES)
    assert set(DEFS["global_choice"]["properties"]["action"]["enum"]) == steps.GLOBAL_ACTIONS
    assert [b["required"] for b in DEFS["http"]["oneOf"]] == [[m] for m in steps.HTTP_METHODS]


def _allowed_in_hint(problem: str) -> set[str]:
    return {k.strip() for k in problem.split("allowed: ")[1].rstrip(")").split(",")}


def test_inline_key_sets_match_the_parsers(tmp_path):
    """hours, nlu and next-branch keys are written out in the parsers, so compare with their messages."""
    with pytest.raises(HoursError) as info:
        parse_hours({"zzz": 1})
    assert _allowed_in_hint(str(info.value)) == set(HOURS_KEYS)
    parse_hours({"timezone": "UTC", "open": {"mon": "09:00-17:00"}, "holidays": ["2026-01-01"],
                 "subdivision": "x", "closed": ["2026-12-24"]})      # every key accepted
    flow = tmp_path / "f.yaml"
    flow.write_text('nlu: {zzz: 1}\nsteps:\n  a: {next: [{zzz: 1, goto: b}]}\n  b: {say: "x", hangup: true}\n',
                    encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(flow)
    hints = [p for p in info.value.problems if "unknown key 'zzz'" in p]
    assert sorted(sorted(_allowed_in_hint(h)) for h in hints) == sorted([sorted(NLU_KEYS), sorted(BRANCH_KEYS)])


def test_every_property_has_a_one_line_description_with_an_example():
    def walk(node, path):
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                text = prop.get("description", "")
                assert text and "\n" not in text and "e.g." in text, f"{path}/{name}: {text!r}"
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    for schema in (SCHEMA, knowledge_schema()):
        walk(schema, "")


# ---- the shipped files ----------------------------------------------------------------


def shipped_files() -> list[tuple[Path, str]]:
    """Every YAML file under flows/, with the schema it follows: flow, subflow or knowledge."""
    files = sorted((ROOT / "flows").rglob("*.yaml"))
    subflows = {(f.parent / str(p)).resolve() for f in files
                for p in ((read_yaml(f) or {}).get("subflows") or {}).values()}
    out = []
    for f in files:
        data = read_yaml(f) or {}
        kind = "knowledge" if "faqs" in data else "subflow" if f.resolve() in subflows else "flow"
        out.append((f, kind))
    return out


@pytest.mark.parametrize("draft", ["2020-12", "7"])
@pytest.mark.parametrize(("path", "kind"), shipped_files(), ids=lambda v: str(v).rsplit("flows/", 1)[-1])
def test_shipped_files_are_valid(path, kind, draft):
    assert errors(as_editor_sees(read_yaml(path)), schema_for(kind, draft)) == []


def test_demo_is_among_the_shipped_flows():
    assert (ROOT / "flows" / "demo.yaml", "flow") in shipped_files()


# ---- schema and loader agree ----------------------------------------------------------

BASE = {
    "start": "main",
    "globals": {"agent": {"say": ["agent"], "dtmf": "0", "goto": "done"}},
    "steps": {
        "main": {"ask": "Track or agent?", "choices": {"track": {"say": ["track"], "dtmf": "1", "goto": "done"}},
                 "max_attempts": 2, "on_fail": "done"},
        "done": {"say": "Bye.", "hangup": True},
    },
}


def with_step(doc: dict, name: str, step: dict) -> dict:
    """`doc` plus a step reached from main's choice."""
    doc["steps"][name] = step
    doc["steps"]["main"]["choices"]["track"]["goto"] = name
    return doc


def mutate(fn):
    def build():
        doc = copy.deepcopy(BASE)
        return fn(doc) or doc
    return build


CASES = {
    "base": (True, mutate(lambda d: None)),
    "unknown step key": (False, mutate(lambda d: d["steps"]["main"].update(sayy="x"))),
    "max_attempts as text": (False, mutate(lambda d: d["steps"]["main"].update(max_attempts="three"))),
    "max_attempts zero": (False, mutate(lambda d: d["steps"]["main"].update(max_attempts=0))),
    "bad slot type": (False, mutate(lambda d: with_step(d, "num", {
        "ask": "Number?", "collect": {"slot": "n", "type": "digit"}, "next": "done"}))),
    "good slot": (True, mutate(lambda d: with_step(d, "num", {
        "ask": "Number?", "collect": {"slot": "n", "type": "digits", "length": 4, "sensitive": True,
                                       "inter_digit_timeout": "2s"},
        "confirm": "{{ slots.n | digits }}?", "next": "done"}))),
    "collect without ask": (False, mutate(lambda d: with_step(d, "num", {
        "say": "Number?", "collect": {"slot": "n", "type": "digits"}, "next": "done"}))),
    "http with two methods": (False, mutate(lambda d: with_step(d, "call", {
        "http": {"get": "http://127.0.0.1:9/a", "post": "http://127.0.0.1:9/b"}, "next": "done"}))),
    "http without a method": (False, mutate(lambda d: with_step(d, "call", {
        "http": {"timeout": "2s"}, "next": "done"}))),
    "http": (True, mutate(lambda d: with_step(d, "call", {
        "http": {"post": "http://127.0.0.1:9/b", "json": {"a": 1}, "timeout": "2s", "retries": 1, "save": "r"},
        "on_error": "done", "next": [{"if": "r.ok", "goto": "done"}, "done"]}))),
    "http retries too many": (False, mutate(lambda d: with_step(d, "call", {
        "http": {"get": "http://127.0.0.1:9/b", "retries": 9}, "next": "done"}))),
    "transfer as text": (True, mutate(lambda d: d["steps"].update(
        done={"say": "One moment.", "transfer": "sip:agents@127.0.0.1"}))),
    "transfer without to": (False, mutate(lambda d: d["steps"].update(
        done={"say": "One moment.", "transfer": {"reason": "help"}}))),
    "action in a step's choice": (False, mutate(lambda d: d["steps"]["main"]["choices"].update(
        again={"say": ["again"], "action": "repeat"}))),
    "action in a global": (True, mutate(lambda d: d["globals"].update(repeat={"say": ["repeat"], "action": "repeat"}))),
    "bad key": (False, mutate(lambda d: d["steps"]["main"]["choices"]["track"].update(dtmf="1x"))),
    "key as a number": (True, mutate(lambda d: d["steps"]["main"]["choices"]["track"].update(dtmf=1))),
    "branch with unknown key": (False, mutate(lambda d: d["steps"].update(
        done={"next": [{"when": "x", "goto": "bye"}, {"goto": "bye"}]}, bye={"say": "Bye.", "hangup": True}))),
    "unknown top key": (False, mutate(lambda d: d.update(nmae="x"))),
    "nlu out of range": (False, mutate(lambda d: d.update(nlu={"accept": 1.5}))),
    "nlu": (True, mutate(lambda d: d.update(nlu={"accept": 0.9, "confirm": 0.5}))),
    "hours": (True, mutate(lambda d: d.update(hours={"timezone": "Asia/Shanghai", "closed": ["2026-12-24"],
                                                     "open": {"mon-fri": "09:00-18:00", "sat": ["10:00-12:00"]}}))),
    "hours in other spellings": (True, mutate(lambda d: d.update(hours={"open": {"Mon-Fri, sun": "0900-18:00"}}))),
    "hours with a bad day": (False, mutate(lambda d: d.update(hours={"open": {"monday": "09:00-18:00"}}))),
    "hours with a bad time": (False, mutate(lambda d: d.update(hours={"open": {"mon": "9:00-18:00"}}))),
    "hours unknown key": (False, mutate(lambda d: d.update(hours={"tz": "UTC"}))),
    "duration": (True, mutate(lambda d: d["steps"]["main"].update(no_input_timeout="4000ms"))),
    "bad duration": (False, mutate(lambda d: d["steps"]["main"].update(no_input_timeout="4 minutes"))),
    "reserved variable": (False, mutate(lambda d: d.update(vars={"slots": 1}))),
    "variables and voice": (True, mutate(lambda d: d.update(vars={"count": 0}, agent_line=100,
                                                            voice={"engine": "piper"}))),
    "step name with a slash": (False, mutate(lambda d: with_step(d, "a/b", {"say": "x", "hangup": True}))),
    "ask as sentences": (True, mutate(lambda d: d["steps"]["main"].update(ask=["Hello.", "Track or agent?"]))),
    "faq without ask": (False, mutate(lambda d: d["steps"]["done"].update(faq=True))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_schema_and_loader_agree(case, tmp_path):
    valid, build = CASES[case]
    doc = build()
    for draft in ("2020-12", "7"):
        found = errors(doc, schema_for("flow", draft))
        assert (found == []) is valid, (draft, found)
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    if valid:
        load_flow(path)
    else:
        with pytest.raises(FlowError):
            load_flow(path)


def test_errors_point_at_the_key():
    doc = CASES["unknown step key"][1]()
    [problem] = validator(SCHEMA).iter_errors(doc)
    assert list(problem.absolute_path) == ["steps", "main"] and "sayy" in problem.message
    doc = CASES["bad slot type"][1]()
    [problem] = validator(SCHEMA).iter_errors(doc)
    assert list(problem.absolute_path) == ["steps", "num", "collect", "type"]


def test_write_schema(tmp_path):
    out = write_schema(tmp_path / "flow.schema.json")
    assert json.loads(out.read_text(encoding="utf-8")) == SCHEMA
    assert json.loads(write_schema(tmp_path / "kb.json", "knowledge").read_text(encoding="utf-8"))["title"] \
        == "ivr knowledge base"


def test_committed_schema_file_is_current():
    """docs/flow.schema.json (flows point editors at it) must be what `ivr schema` writes now."""
    committed = ROOT / "docs" / "flow.schema.json"
    if not committed.is_file():
        pytest.skip("docs/flow.schema.json is not generated yet")
    text = committed.read_text(encoding="utf-8")
    assert text in (schema_text("flow", "2020-12"), schema_text("flow", "7")), \
        "regenerate it: ivr schema -o docs/flow.schema.json"
