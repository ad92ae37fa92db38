"""Whole-flow checks after every step is built: targets, reachability, keys, overlaps, loops.

These are the mistakes that otherwise surface only in a live call: a goto to a step that
does not exist, a step nobody can reach, two answers on the same key or phrase, a circle of
steps that never listens.
"""

import difflib
import re

from jinja2 import TemplateError, nodes

from ivr.flow.model import Choice, Flow, Step
from ivr.flow.templates import Template, environments
from ivr.flow.yamlsrc import LineDict, Problems

_ENV = re.compile(r"\benv\.([A-Za-z_][A-Za-z0-9_]*)")


def check_flow(flow: Flow, data: LineDict, problems: Problems, complete: bool = True) -> None:
    """`complete`: every step built; otherwise reachability and loops are not judged."""
    names = list(flow.steps)

    def check(where, key, target, what="step", inside: str = ""):
        """`inside`: the step's subflow prefix ("order/"); its own steps are suggested by their local names."""
        if not isinstance(target, str) or target not in flow.steps:
            local = [n.removeprefix(inside) for n in names if inside and n.startswith(inside)]
            close = difflib.get_close_matches(str(target), local or names, n=1)
            shown = local or names
            problems.error(where, key, f"unknown {what} '{target}'",
                           f"did you mean '{close[0]}'?" if close else "steps: " + ", ".join(shown[:12]))

    if flow.start not in flow.steps:
        check(data, "start", flow.start)
    if flow.on_error and flow.on_error not in flow.steps:
        check(data, "on_error", flow.on_error)
    for choice in flow.globals:
        if choice.goto:
            check(choice.goto_pos if choice.goto_pos[0] else data.get("globals"), None, choice.goto)
    for route in flow.watch:
        check(_At(flow.path, route.line, route.col), "watch", route.goto)
    check_keys(problems, data.get("globals"), None, "globals", flow.globals)
    check_phrases(problems, data.get("globals"), None, "globals", flow.globals)
    for step in flow.steps.values():
        inside = step.name[: step.name.rfind("/") + 1]
        for route in step.next:   # point at the `goto` itself, not at the step
            check(_At(step.file, route.line, route.col) if route.line else step, "next", route.goto, inside=inside)
        for choice in step.choices:
            if choice.goto:
                check(_At(step.file, *choice.goto_pos) if choice.goto_pos[0] else step, "choices", choice.goto,
                      inside=inside)
        for key, target in step.targets():
            if not key.startswith(("next", "choices.")):
                check(step, key, target, inside=inside)
        if step.run and step.run not in flow.subflows:
            problems.error(step, "run", f"step '{step.name}' runs unknown subflow '{step.run}'",
                           "declare it under subflows: {NAME: path/to/file.yaml}" if not flow.subflows
                           else "subflows: " + ", ".join(flow.subflows))
        if step.returns and "/" not in step.name:
            problems.error(step, "return", f"step '{step.name}' returns, but it is not in a subflow",
                           "use hangup, transfer or next in the main flow")
        if step.faq and flow.knowledge is None:
            problems.error(step, "faq", f"step '{step.name}' answers from the knowledge base, but the flow has none",
                           "add knowledge: faq/FILE.yaml at the top of the flow")
        check_keys(problems, step, "choices", f"step '{step.name}'", step.choices, flow.globals)
        check_phrases(problems, step, "choices", f"step '{step.name}'", step.choices, flow.globals)
    check_conditions(flow, problems)
    if problems.items or not complete:
        return   # reachability and loops need every step and target to exist
    check_reachable(flow, problems)
    check_loops(flow, problems)
    if flow.knowledge is not None:
        from ivr.flow.knowledge import warn_overlaps  # it reads files with this package's helpers
        warn_overlaps(flow, problems)


class _At:
    """A place in a (sub)flow file, for a problem with a value inside a step."""

    def __init__(self, file: str, line: int, col: int) -> None:
        self.file, self.line, self.col = file, line, col

    def where(self, key=None) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def check_keys(problems: Problems, where, key, what: str, choices: tuple[Choice, ...],
               globals_: tuple[Choice, ...] = ()) -> None:
    """No key used twice among `choices`, nor by one of them and a global (globals are checked once)."""
    seen: dict[str, str] = {}
    for choice in choices:
        if choice.dtmf and choice.dtmf in seen:
            problems.error(where, key, f"key '{choice.dtmf}' is used by both '{seen[choice.dtmf]}' and "
                           f"'{choice.name}' in {what}", "give each answer its own key")
        seen.setdefault(choice.dtmf, choice.name)
    for choice in globals_:
        if choice.dtmf and choice.dtmf in seen:
            problems.error(where, key, f"key '{choice.dtmf}' is used by both '{seen[choice.dtmf]}' and global "
                           f"'{choice.name}' in {what}", "globals answer at every step: pick another key")


def check_phrases(problems: Problems, where, key, what: str, choices: tuple[Choice, ...],
                  globals_: tuple[Choice, ...] = ()) -> None:
    """The same phrase for two answers makes the caller's words ambiguous."""
    owner: dict[str, str] = {}
    for choice in (*choices, *globals_):
        for phrase in choice.intent.phrases:
            other = owner.get(phrase)
            if other and other != choice.name:
                problems.error(where, key, f"choice patterns overlap in {what}: '{phrase}' means both '{other}' "
                               f"and '{choice.name}'", "remove the phrase from one of them")
            owner.setdefault(phrase, choice.name)


def check_reachable(flow: Flow, problems: Problems) -> None:
    seen: set[str] = set()
    todo = [flow.start, *(c.goto for c in flow.globals if c.goto), *(r.goto for r in flow.watch)]
    todo += [flow.on_error] if flow.on_error else []
    while todo:
        name = todo.pop()
        if name in seen or name not in flow.steps:
            continue
        seen.add(name)
        step = flow.steps[name]
        todo += [t for _, t in step.targets()]
        if step.run:
            todo.append(flow.subflows[step.run])
    for step in flow.steps.values():
        if step.name not in seen:
            problems.error(step, None, f"step '{step.name}' is unreachable: no step leads to it",
                           "add a goto/next to it, or delete it")


def check_loops(flow: Flow, problems: Problems) -> None:
    """A circle of steps that never listen nor wait on a service spins forever."""
    def plain_next(step: Step) -> str | None:
        if step.listens or step.http or step.run or step.transfer or step.hangup or step.returns or step.queue:
            return None
        if len(step.next) == 1 and step.next[0].condition is None:
            return step.next[0].goto
        return None

    reported: set[str] = set()
    for start in flow.steps:
        path, name = [], start
        while name is not None and name not in path:
            path.append(name)
            name = plain_next(flow.steps[name])
        if name is not None and name not in reported:
            cycle = path[path.index(name):]
            reported.update(cycle)
            problems.error(flow.steps[name], None,
                           "steps loop without ever listening: " + " -> ".join([*cycle, name]),
                           "let one of them ask, or end the loop")


# Fields of the call data that conditions may read (caller.* and saved HTTP answers are open-ended).
FIELDS = {"call": {"caller", "called", "params"}, "http": {"ok", "status", "error"},
          "sentiment": {"last", "label", "turns", "negative_turns"}}
ERROR_FIELDS = ("what", "kind", "step")   # set by the interpreter before it enters the flow's on_error step


def check_conditions(flow: Flow, problems: Problems) -> None:
    """A condition naming something that does not exist (`slot.pin` for `slots.pin`, a slot no step
    collects) is always false in a call: warn, with the nearest existing name."""
    from ivr.flow.state import CallState, context  # state builds on model; imported late like the loader

    env = environments(flow.language).text
    variables = {name for name, _ in flow.variables}
    variables |= {name for step in flow.steps.values() for name, _ in step.assign}
    variables |= {name for step in flow.steps.values() for c in (*step.choices, *flow.globals) for name, _ in c.assign}
    variables |= {s.http.save for s in flow.steps.values() if s.http and s.http.save}
    known = {**{name: None for name in context(flow, CallState())}, **{name: None for name in variables}}
    known.update(dict.fromkeys(env.globals))
    if flow.on_error:
        known["error"] = None   # what failed, for the on_error step
    fields = {**FIELDS, "slots": {s.collect.slot.name for s in flow.steps.values() if s.collect},
              "vars": variables, "last": set(context(flow, CallState())["last"]), "error": set(ERROR_FIELDS)}

    def check(template: Template, at, what: str = "condition") -> None:
        try:
            tree = env.parse("{{ (" + template.source + ") }}")
        except TemplateError:
            return   # compile errors are reported where the template is built
        for node in tree.find_all(nodes.Name):
            if node.ctx == "load" and node.name not in known:
                hint = _near(node.name, known) or ("env.* is read only by HTTP steps and transfer targets"
                                                  if node.name == "env" else "known: " + ", ".join(sorted(known)))
                problems.warn(at, None, f"{what} {template.source.strip()!r} names '{node.name}', which does not "
                              "exist: it is always empty (false)", hint)
        for node in tree.find_all(nodes.Getattr):
            if isinstance(node.node, nodes.Name) and node.node.name in fields \
                    and node.attr not in fields[node.node.name]:
                names = fields[node.node.name]
                missing = {"slots": "no step collects a slot", "vars": "no variable"}.get(node.node.name, "there is no")
                hint = _near(node.attr, names, f"{node.node.name}.") or (
                    f"{node.node.name}.* are: " + ", ".join(sorted(names)) if names else "")
                problems.warn(at, None, f"{what} {template.source.strip()!r} reads {node.node.name}.{node.attr}, "
                              f"but {missing} '{node.attr}': it is always empty (false)", hint)

    for step in flow.steps.values():
        for route in step.next:
            if route.condition is not None:
                check(route.condition, _At(step.file, *route.cond_pos) if route.cond_pos[0] else step)
        for _, value in step.assign:
            if isinstance(value, Template) and value.kind == "condition":
                check(value, _At(step.file, *step.key_pos.get("set", (step.line, 1))), "set value")
        for choice in step.choices:
            for _, value in choice.assign:
                if isinstance(value, Template) and value.kind == "condition":
                    check(value, _At(step.file, choice.line, 1) if choice.line else step, "set value")
    for route in flow.watch:
        if route.condition is not None:
            check(route.condition, _At(flow.path, route.line, route.col), "watch condition")


def _near(name: str, names, prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f"did you mean '{prefix}{close[0]}'?" if close else ""


def env_names(flow: Flow) -> tuple[str, ...]:
    """Environment variables that the flow's HTTP calls and transfer targets read."""
    sources: list[str] = []
    specs = [s.http for s in flow.steps.values() if s.http] + ([flow.caller_lookup] if flow.caller_lookup else [])
    for spec in specs:
        sources += [spec.url.source, *(t.source for _, t in spec.headers), *_strings(spec.json_body)]
    for step in flow.steps.values():
        if step.transfer:
            sources.append(step.transfer.to.source)
    return tuple(sorted({m for s in sources for m in _ENV.findall(s)}))


def _strings(value) -> list[str]:
    if isinstance(value, Template):
        return [value.source]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
