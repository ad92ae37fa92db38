"""Load a YAML flow file (with its subflows and knowledge base) into a checked `Flow`.

Every problem names file:line:column and a hint, and all problems of a file are reported
together, so an author fixes a file in one pass. `ivr validate` runs exactly this.
"""

from dataclasses import replace
from pathlib import Path

from ivr import lang
from ivr.durations import parse_duration_ms
from ivr.flow import checks, languages, understand, watch
from ivr.flow.hours import HoursError, parse_hours
from ivr.flow.model import DEFAULT_ACCEPT, DEFAULT_CONFIRM, DEFAULT_FAQ_MARGIN, Flow, Step
from ivr.flow.steps import RESERVED_NAMES, StepBuilder
from ivr.flow.yamlsrc import FlowError, LineDict, Problems, as_text, read_yaml

__all__ = ["FlowError", "load_flow", "parse_duration_ms"]

TOP_KEYS = {"name", "language", "languages", "voice", "agent_line", "globals", "start", "steps", "knowledge",
            "hours", "caller_lookup", "vars", "subflows", "nlu", "watch", "on_error"}
SUBFLOW_KEYS = {"name", "language", "languages", "start", "steps", "subflows"}
SUBFLOW_SEP = "/"


def load_flow(path: str | Path, language: str | None = None) -> Flow:
    """The flow in its first (default) language, or in `language`; a flow with several
    `languages:` is built once per language (`Flow.variants`, ivr.flow.languages)."""
    path = Path(path)
    data = read_yaml(path)
    problems = Problems(path)
    if not isinstance(data, LineDict):
        raise FlowError([f"{path}:1:1: a flow file must be a mapping with 'steps' and 'start'"])
    problems.check_keys(data, TOP_KEYS, "the flow")
    tags = _languages(data, problems)
    hours = None if "hours" in data and languages.is_language_map(data["hours"]) else _hours(data, problems)
    errors: list[str] = []
    sources = [str(path.resolve())]   # every file read, for hot reload
    built = [_build(path, data, tag, tags, hours, problems, errors, sources) for tag in tags]
    problems.items = list(dict.fromkeys(problems.items))
    if problems.items or errors:
        raise FlowError(problems.items + list(dict.fromkeys(errors)))
    variants: dict[str, Flow] = {}
    for flow in built:
        understand.prepare(flow)   # embed the choices' phrases now, not on the first caller's turn
        variants[flow.lang] = replace(flow, warnings=tuple(dict.fromkeys(problems.warnings)),
                                      languages=tags if len(tags) > 1 else (), variants=variants,
                                      sources=tuple(dict.fromkeys(sources)))
    if language is None:
        return variants[built[0].lang]
    if lang.base_language(language, "") not in variants:
        raise FlowError([f"{path}:1:1: the flow does not speak {language} (its languages: {', '.join(tags)})"])
    return variants[lang.base_language(language)]


def _build(path: Path, data: LineDict, language: str, tags: tuple[str, ...], hours, problems: Problems,
           errors: list[str], sources: list[str]) -> Flow:
    """The flow with every `{en: ..., zh: ...}` map resolved to `language`."""
    builder = StepBuilder(problems, language, path.parent, None, tags)
    if "hours" in data and languages.is_language_map(data["hours"]):   # each language's agents, own hours
        hours = _hours({"hours": languages.localized(builder, data, "hours")}, problems, data)
    hours = replace(hours, language=language) if hours else None
    builder.timezone = hours.timezone if hours else None
    steps, subflows, start = _steps(path, data, builder, "", (path.resolve(),), errors, sources)
    globals_ = tuple(builder.choices(data.get("globals") or {}, "globals", is_global=True, where=data, key="globals"))
    flow = Flow(
        name=str(data.get("name") or path.stem), path=str(path), language=language, start=start,
        steps=steps, globals=globals_, voice=_voice(data, builder), agent_line=as_text(data.get("agent_line")),
        knowledge=_knowledge(path, data, builder, errors), hours=hours, on_error=as_text(data.get("on_error")),
        caller_lookup=builder.http(data, "caller_lookup") if "caller_lookup" in data else None,
        variables=_variables(data, builder), subflows=subflows, watch=watch.build(builder, data),
        **_thresholds(data, problems),
    )
    if flow.knowledge is not None:
        sources.append(str(Path(flow.knowledge.path).resolve()))
    flow = replace(flow, env_names=checks.env_names(flow), sources=tuple(dict.fromkeys(sources)))
    checks.check_flow(flow, data, problems, complete=not (problems.items or errors))
    return flow


def _steps(path: Path, data: LineDict, builder: StepBuilder, prefix: str, chain: tuple[Path, ...],
           errors: list[str], sources: list[str]) -> tuple[dict[str, Step], dict[str, str], str]:
    """The steps of a flow or subflow file, names prefixed `sub/` inside subflows."""
    p = builder.p
    steps_data = data.get("steps")
    if not isinstance(steps_data, LineDict) or not steps_data:
        p.error(data, "steps" if "steps" in data else None, "the flow has no steps",
                "add a 'steps:' mapping of step names to steps")
        raise FlowError(p.items + errors)
    steps: dict[str, Step] = {}
    for name, spec in steps_data.items():
        if SUBFLOW_SEP in str(name):
            p.error(steps_data, name, f"step name '{name}' may not contain '{SUBFLOW_SEP}'")
        step = builder.step(str(name), spec, steps_data)
        if step is not None:
            steps[str(name)] = step
    start = str(as_text(data.get("start")) or next(iter(steps_data)))
    subflows: dict[str, str] = {}
    for sub_name, sub_path in (data.get("subflows") or {}).items():
        full = (path.parent / str(sub_path)).resolve()
        where = data["subflows"]
        if full in chain:
            p.error(where, sub_name, f"subflow '{sub_name}' includes itself ({' -> '.join(c.name for c in chain)})")
            continue
        if not full.is_file():
            p.error(where, sub_name, f"subflow file not found: {full}", "paths are relative to the flow file")
            continue
        sub_steps, sub_subs, sub_start = _subflow(full, builder, f"{prefix}{sub_name}{SUBFLOW_SEP}",
                                                   (*chain, full), errors, sources)
        steps.update(sub_steps)
        subflows[f"{prefix}{sub_name}"] = sub_start
        subflows.update(sub_subs)
    if prefix:
        steps = {f"{prefix}{k}": _prefixed(v, prefix, set(steps_data), set(subflows)) for k, v in steps.items()}
        start = f"{prefix}{start}"
    return steps, subflows, start


def _languages(data: LineDict, problems: Problems) -> tuple[str, ...]:
    """`languages: [en-US, zh-CN]` (the first is the default) or one `language:`, canonical."""
    if "languages" not in data:
        return (_language(data, problems),)
    if "language" in data:
        problems.error(data, "language", "the flow has both 'language' and 'languages'",
                       "keep languages: [...]; its first entry is the default")
    value = data["languages"]
    if not isinstance(value, list) or not value:
        problems.error(data, "languages", "'languages' must list the flow's languages, the default first",
                       "e.g. languages: [en-US, zh-CN]")
        return (lang.DEFAULT,)
    tags: dict[str, str] = {}
    for i, raw in enumerate(value):
        try:
            tag = lang.canonical(str(raw))
        except lang.UnknownLanguage as exc:
            problems.error(value, i, exc.message, exc.hint)
            continue
        if lang.base_language(tag) in tags:
            problems.error(value, i, f"'{raw}' repeats {tags[lang.base_language(tag)]}",
                           "a flow speaks each language once (one variant per base language)")
            continue
        tags[lang.base_language(tag)] = tag
    return tuple(tags.values()) or (lang.DEFAULT,)


def _language(data: LineDict, problems: Problems) -> str:
    """The file's `language:` as a canonical tag (ivr.lang: `cmn`, `zh_CN` -> zh-CN); en-US if absent."""
    try:
        return lang.canonical(as_text(data.get("language")) or None)
    except lang.UnknownLanguage as exc:
        problems.error(data, "language", exc.message, exc.hint)
        return lang.DEFAULT


def _subflow(path: Path, parent: StepBuilder, prefix: str, chain: tuple[Path, ...], errors: list[str],
             sources: list[str]):
    language = parent.language
    sources.append(str(path))
    try:
        data = read_yaml(path, "subflow file")
    except FlowError as exc:
        errors += exc.problems
        return {}, {}, ""
    problems = Problems(path)
    if not isinstance(data, LineDict):
        errors.append(f"{path}:1:1: a subflow file must be a mapping with 'steps' and 'start'")
        return {}, {}, ""
    problems.check_keys(data, SUBFLOW_KEYS, "a subflow")
    spoken = {lang.base_language(t) for t in parent.languages}
    if data.get("language") and lang.base_language(_language(data, problems)) not in spoken:
        problems.error(data, "language", f"subflow language {data['language']} is not one of the flow's "
                       f"({', '.join(parent.languages)})")
    builder = StepBuilder(problems, language, path.parent, parent.timezone, parent.languages)
    try:
        result = _steps(path, data, builder, prefix, chain, errors, sources)
    except FlowError:
        result = {}, {}, ""
    errors += problems.items
    return result


def _prefixed(step: Step, prefix: str, local: set[str], subflows: set[str]) -> Step:
    """Targets inside a subflow name its own steps: give them the subflow's prefix."""
    def name(target: str | None) -> str | None:
        return f"{prefix}{target}" if target in local else target
    return replace(
        step, name=f"{prefix}{step.name}", next=tuple(replace(r, goto=name(r.goto)) for r in step.next),
        on_fail=name(step.on_fail), on_error=name(step.on_error), after_faq=name(step.after_faq),
        run=f"{prefix}{step.run}" if step.run and f"{prefix}{step.run}" in subflows else step.run,
        choices=tuple(replace(c, goto=name(c.goto)) for c in step.choices),
    )


def _voice(data: LineDict, builder: StepBuilder) -> str | None:
    """`voice: piper`, `{engine: espeak, name: cmn}`, or per language `{en: piper, zh: "espeak:cmn"}`."""
    value = data.get("voice")
    if isinstance(value, dict) and not set(value) <= {"engine", "name"}:
        value = languages.localized(builder, data, "voice")
    if isinstance(value, dict):
        return ":".join(str(value[k]) for k in ("engine", "name") if value.get(k))
    return str(value) if value else None


def _knowledge(path: Path, data: LineDict, builder: StepBuilder, errors: list[str]):
    """`knowledge: faq.yaml`, or one file per language: `{en: faq_en.yaml, zh: faq_zh.yaml}`."""
    if not data.get("knowledge"):
        return None
    from ivr.flow.knowledge import load_knowledge  # it reuses this package's YAML helpers

    chosen = languages.localized(builder, data, "knowledge")
    if not chosen:
        return None
    kb_path = (path.parent / str(chosen)).resolve()
    if not kb_path.is_file():
        builder.p.error(data, "knowledge", f"knowledge file not found: {kb_path}",
                        "paths are relative to the flow file")
        return None
    try:
        kb = load_knowledge(kb_path)
    except FlowError as exc:
        errors += exc.problems
        return None
    if len(builder.languages) > 1 and lang.base_language(kb.language) != lang.base_language(builder.language):
        builder.p.error(data, "knowledge", f"the knowledge file for {builder.language} is in {kb.language}: "
                        f"{kb_path.name}", "give each language its own file, with language: set in it")
    return kb


def _hours(data: LineDict, problems: Problems, where: LineDict | None = None):
    """`hours:` (or, for a flow with several languages, one language's entry of it)."""
    where = where if where is not None else data
    if "hours" not in data or data["hours"] is None:
        return None
    if not isinstance(data["hours"], dict):
        problems.error(where, "hours", 'hours must be a mapping like {timezone: Asia/Shanghai, open: {mon-fri: '
                       '"09:00-18:00"}}')
        return None
    try:
        return parse_hours(data["hours"])
    except HoursError as exc:
        problems.error(where, "hours", str(exc))
        return None


def _variables(data: LineDict, builder: StepBuilder) -> tuple[tuple[str, object], ...]:
    values = data.get("vars") or {}
    if not isinstance(values, dict):
        builder.p.error(data, "vars", "'vars' must map variable names to starting values")
        return ()
    out = []
    for name, raw in values.items():
        if str(name) in RESERVED_NAMES:
            builder.p.error(values, name, f"'{name}' is a reserved name", "choose another variable name")
        out.append((str(name), builder.value(values, name, raw)))
    return tuple(out)


def _thresholds(data: LineDict, problems: Problems) -> dict:
    nlu = data.get("nlu") or {}
    if not isinstance(nlu, dict):
        problems.error(data, "nlu", "'nlu' must be a mapping like {accept: 0.8, confirm: 0.6}")
        return {}
    if isinstance(nlu, LineDict):
        problems.check_keys(nlu, {"accept", "confirm", "faq", "faq_margin"}, "nlu")
    accept, confirm = nlu.get("accept", DEFAULT_ACCEPT), nlu.get("confirm", DEFAULT_CONFIRM)
    faq, margin = nlu.get("faq"), nlu.get("faq_margin", DEFAULT_FAQ_MARGIN)
    values = (accept, confirm, margin) if faq is None else (accept, confirm, margin, faq)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1 for v in values) \
            or confirm > accept or not (accept > 0 and confirm > 0 and (faq is None or faq > 0)):
        problems.error(nlu, None, "nlu thresholds must be numbers in (0, 1] with confirm <= accept "
                       "(faq_margin: 0..1)")
        return {}
    return {"accept": float(accept), "confirm": float(confirm), "faq_margin": float(margin),
            "faq_threshold": None if faq is None else float(faq)}
