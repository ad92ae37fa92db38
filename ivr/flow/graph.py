"""`ivr graph`: a picture of a flow as Graphviz DOT, SVG, or a self-contained HTML page.

The DOT is a pure function of the flow (same flow -> same text): steps in file order, one
node per step shaped by what it does, subflows as clusters, global intents once in a box of
their own. SVG needs Graphviz's `dot`; the HTML page (`graphpage.py`) falls back to a plain
list without it.
"""

import logging
import re
import shutil
import subprocess
import unicodedata
from functools import lru_cache
from pathlib import Path

from ivr.errors import UserError
from ivr.flow.model import Choice, Flow, Step

log = logging.getLogger(__name__)

# kind -> (shape, fill colour, legend text); the transfer colour stands out on purpose
KINDS = {
    "ask": ("box", "#dbeafe", "listens (ask: choices, collect, faq)"),
    "say": ("note", "#f1f5f9", "says something, then moves on"),
    "set": ("box", "#f1f5f9", "sets variables, then moves on"),
    "branch": ("diamond", "#f8fafc", "only chooses the next step"),
    "http": ("component", "#ede9fe", "calls a service (http)"),
    "run": ("box3d", "#dcfce7", "runs a subflow"),
    "return": ("invhouse", "#dcfce7", "returns from a subflow"),
    "transfer": ("cds", "#fb923c", "transfers the call"),
    "queue": ("cds", "#fdba74", "waits in a queue for an agent"),
    "language": ("box", "#fef9c3", "the caller picks the call's language"),
    "hangup": ("octagon", "#fecaca", "hangs up"),
}
# exit kind -> DOT edge attributes (and the legend's CSS line)
EDGES = {
    "choice": ('color="#1e3a8a"', "solid #1e3a8a", "a choice: name · key"),
    "next": ('color="#334155"', "solid #334155", "next (with its condition)"),
    "fail": ('style=dashed, color="#64748b"', "dashed #64748b", "on_fail: after max_attempts no-input/no-match"),
    "error": ('style=dashed, color="#dc2626", fontcolor="#dc2626"', "dashed #dc2626", "on_error: HTTP failed"),
    "faq": ('style=dotted, color="#0f766e"', "dotted #0f766e", "after_faq: after a knowledge-base answer"),
    "run": ('style=bold, color="#16a34a"', "solid #16a34a", "run: into a subflow"),
    "global": ('style=dashed, color="#a16207", fontcolor="#a16207"', "dashed #a16207", "a global intent"),
}
LATIN_FONTS = "Helvetica,Arial,sans-serif"
CJK_FONTS = "Noto Sans CJK SC,PingFang SC,Microsoft YaHei"
START_ID, GLOBALS_ID, ERRORS_ID = "/start", "/globals", "/errors"    # '/' cannot start a step name: no clash
LABEL_COLS, COND_COLS, TOOLTIP_CHARS = 30, 28, 400
RANKDIRS = ("TB", "LR", "BT", "RL")     # top-down suits screens best for most flows
_WIDE = r"\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"     # CJK characters and punctuation
_CJK = re.compile(f"[{_WIDE}]")
_TOKEN = re.compile(f" |[{_WIDE}]|[^\\s{_WIDE}]+")      # a space, a CJK character, or a run of anything else
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_TAG = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)
_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)


def kind_of(step: Step) -> str:
    """What a step does, in the order the loader's shape check gives precedence."""
    for kind, present in (("ask", step.ask), ("http", step.http), ("run", step.run), ("return", step.returns),
                          ("transfer", step.transfer), ("hangup", step.hangup), ("queue", step.queue),
                          ("language", step.language_menu)):
        if present:
            return kind
    return "say" if step.say else "set" if step.assign else "branch"


def exits(step: Step, flow: Flow) -> list[tuple[str, str, str]]:
    """(label, target step, exit kind) for every way out of `step`."""
    out = [(f"{c.name} · {c.dtmf}" if c.dtmf else c.name, c.goto, "choice") for c in step.choices if c.goto]
    if step.run and flow.subflows.get(step.run):
        out.append(("run", flow.subflows[step.run], "run"))
    conditional = len(step.next) > 1 or any(r.condition for r in step.next)
    for route in step.next:
        if route.condition is not None:
            label = "if " + excerpt(gist(route.condition.source), COND_COLS)
        elif conditional:
            label = "else"
        elif step.collect:
            label = f"got {step.collect.slot.name}"
        else:
            label = "after return" if step.run else ""
        out.append((label, route.goto, "next"))
    if step.after_faq:
        out.append(("after_faq", step.after_faq, "faq"))
    if step.on_fail:
        out.append((f"on_fail ({step.max_attempts} tries)", step.on_fail, "fail"))
    if step.on_error:
        out.append(("on_error", step.on_error, "error"))
    if step.queue:
        out += [(key, getattr(step.queue, key), "fail") for key in ("on_timeout", "on_empty", "on_callback")
                if getattr(step.queue, key)]
    return out


def prompts(step: Step) -> list[tuple[str, str]]:
    """(key, text) of everything the step says or does, for tooltips and the HTML table."""
    out = [("say", p.text.source + (f" [audio {Path(p.audio_path).name}]" if p.audio_path else "")) for p in step.say]
    out += [("set", f"{name} = {_source(value)}") for name, value in step.assign]
    if step.ask:
        out.append(("ask", step.ask.text.source))
    if step.collect:
        slot = step.collect.slot
        out.append(("collect", f"{slot.name}: {slot.type}" + (" (sensitive: masked in traces, logs and the agent's "
                                                              "context)" if step.collect.sensitive else "")))
        if step.collect.confirm:
            out.append(("confirm", step.collect.confirm.source))
    out += [("no_input", t.source) for t in step.no_input] + [("no_match", t.source) for t in step.no_match]
    if step.http:
        out.append(("http", f"{step.http.method} {step.http.url.source}"
                    + (f" → {step.http.save}" if step.http.save else "")))
    if step.run:
        out.append(("run", step.run))
    if step.transfer:
        out.append(("transfer", step.transfer.to.source
                    + (f" ({step.transfer.reason.source})" if step.transfer.reason else "")))
    return out


def _source(value) -> str:
    return value.source if hasattr(value, "source") else str(value)


def global_line(choice: Choice) -> str:
    head = f"{choice.name} · {choice.dtmf}" if choice.dtmf else choice.name
    return f"{head} → {choice.goto}" if choice.goto else f"{head} ({choice.action})"


# ---- DOT --------------------------------------------------------------------------------


def flow_to_dot(flow: Flow, *, rankdir: str = "TB", fontname: str | None = None, links: bool = False) -> str:
    """The flow as Graphviz DOT. `links` makes every node a link to `#step-N` (for the HTML page)."""
    if rankdir not in RANKDIRS:
        raise UserError(f"unknown direction '{rankdir}'", "use " + ", ".join(RANKDIRS))
    font = fontname or pick_font(flow)
    ids = {name: i for i, name in enumerate(flow.steps)}
    lines = [
        "digraph flow {",
        # ordering=out keeps a menu's choices in the order they are written
        f'  graph [charset="UTF-8", rankdir={rankdir}, newrank=true, ordering=out, nodesep=0.25, ranksep=0.45, '
        f'labelloc=t, fontname={q(font)}, fontsize=16, label={q(f"{flow.name} ({flow.language})")}];',
        f'  node [fontname={q(font)}, fontsize=11, style="filled", margin="0.12,0.05"];',
        f"  edge [fontname={q(font)}, fontsize=9, arrowsize=0.7];",
        f'  {q(START_ID)} [shape=circle, label="start", width=0.5, fixedsize=true, fillcolor="#111827", '
        'fontcolor=white, fontsize=9];',
    ]
    members: dict[str, list[str]] = {}
    for name in flow.steps:
        members.setdefault(name.rpartition("/")[0], []).append(name)
    prefixes = sorted({"/".join(n.split("/")[:d]) for n in flow.steps for d in range(1, n.count("/") + 1)})

    def emit(prefix: str, indent: str) -> None:
        for name in members.get(prefix, []):
            lines.append(indent + node(flow.steps[name], ids[name] if links else None, name == flow.start))
        for sub in (p for p in prefixes if p.rpartition("/")[0] == prefix):
            lines.append(f'{indent}subgraph "cluster_{prefixes.index(sub)}" {{ label={q("subflow " + sub)}; '
                         'style="rounded,dashed"; color="#94a3b8"; fontsize=12;')
            emit(sub, indent + "  ")
            lines.append(indent + "}")

    emit("", "  ")
    lines.append(f"  {q(START_ID)} -> {q(flow.start)} [penwidth=2];")
    for step in flow.steps.values():
        for label, target, how in exits(step, flow):
            lines.append(f"  {q(step.name)} -> {q(target)} [{f'label={q(label)}, ' if label else ''}{EDGES[how][0]}];")
    if flow.globals:
        rows = "".join(dot_text(global_line(c)) + "\\l" for c in flow.globals)
        lines.append(f'  {q(GLOBALS_ID)} [shape=note, fillcolor="#fef9c3", '
                     f'label="global intents (at every listening step)\\n{rows}"];')
        for choice in flow.globals:
            if choice.goto:
                lines.append(f"  {q(GLOBALS_ID)} -> {q(choice.goto)} [label={q(choice.name)}, "
                             f"{EDGES['global'][0]}, constraint=false];")
    if flow.on_error:
        lines.append(f'  {q(ERRORS_ID)} [shape=note, fillcolor="#fee2e2", label="on a failing template or '
                     'service\\n(the flow\'s on_error)"];')
        lines.append(f"  {q(ERRORS_ID)} -> {q(flow.on_error)} [label=\"on_error\", {EDGES['error'][0]}, "
                     "constraint=false];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def node(step: Step, link: int | None, is_start: bool) -> str:
    kind = kind_of(step)
    shape, fill, _ = KINDS[kind]
    local = step.name.rpartition("/")[2]
    detail = node_detail(step, kind)
    label = "\\n".join(dot_text(x) for x in [local + ("  ▶ start" if is_start else ""), *detail])
    said = "\n".join(f"{k}: {' '.join(t.split())}" for k, t in prompts(step)) or step.name
    if len(said) > TOOLTIP_CHARS:      # cut before escaping: a cut escape would break the DOT
        said = said[: TOOLTIP_CHARS - 1] + "…"
    tooltip = "\\n".join(dot_text(line) for line in said.split("\n"))
    attrs = [f"shape={shape}", f'fillcolor="{fill}"', f'label="{label}"', f'tooltip="{tooltip}"']
    if kind == "ask":
        attrs.append('style="rounded,filled"')
    if step.collect and step.collect.sensitive:   # a PIN or card number: marked, so reviewers notice
        attrs += ['color="#b91c1c"', "peripheries=2"]
    if is_start:
        attrs.append("penwidth=2.5")
    if link is not None:
        attrs += [f'URL="#step-{link}"', 'target="_self"']
    return f"{q(step.name)} [{', '.join(attrs)}];"


def node_detail(step: Step, kind: str) -> list[str]:
    """One or two short lines under the step name: the gist of what it says or does."""
    if kind == "ask":
        lines = wrap(f"“{gist(step.ask.text.source)}”", LABEL_COLS, 2)
        if step.collect:
            sensitive = " · sensitive" if step.collect.sensitive else ""
            lines.append(f"[{step.collect.slot.name}: {step.collect.slot.type}{sensitive}]")
        return lines + (["+ FAQ answers"] if step.faq else [])
    if kind == "http":
        return [excerpt(f"{step.http.method} {gist(step.http.url.source)}", LABEL_COLS)] + (
            [f"→ {step.http.save}"] if step.http.save else [])
    if kind == "run":
        return [f"run {step.run}"]
    if kind == "transfer":
        return [excerpt("→ " + gist(step.transfer.to.source), LABEL_COLS)]
    if kind == "queue":
        return [excerpt(f"queue {step.queue.name}", LABEL_COLS)]
    if kind == "set":
        shown = [excerpt(f"{name} = {gist(_source(value))}", LABEL_COLS) for name, value in step.assign[:2]]
        return ["set " + shown[0], *shown[1:]] + (["…"] if len(step.assign) > 2 else [])
    cols = LABEL_COLS * 2 // 3 if kind == "hangup" else LABEL_COLS    # an octagon grows fast with width
    return wrap(f"“{gist(step.say[0].text.source)}”", cols, 2) if step.say else []


def q(text: str) -> str:
    """A DOT quoted string."""
    return f'"{dot_text(text)}"'


def dot_text(text: str) -> str:
    """Text safe inside a DOT quoted string: quotes and backslashes escaped, `&` kept literal."""
    text = _CONTROL.sub(" ", str(text))
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def gist(text: str) -> str:
    """Template text made short for a label: `{{ slots.id | digits }}` -> `{slots.id}`, no `{% %}` tags."""
    return _EXPR.sub(lambda m: "{" + m.group(1).split("|")[0].strip() + "}", _TAG.sub("", text))


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def excerpt(text: str, cols: int) -> str:
    """`text` on one line, cut to `cols` display columns (CJK counts two) with an ellipsis."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    if width(text) <= cols:
        return text
    out = ""
    for ch in text:
        if width(out + ch) > cols - 1:
            break
        out += ch
    return out.rstrip() + "…"


def wrap(text: str, cols: int, max_lines: int) -> list[str]:
    """Word-wrap by display width (CJK characters break anywhere); the last line ends in … if cut."""
    lines, line = [], ""
    for token in _TOKEN.findall(" ".join(text.split())):
        if token != " " and line.strip() and width(line + token) > cols:
            lines.append(line.rstrip())
            line = ""
        if token != " " or line:
            line += token
    lines.append(line.rstrip())
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], excerpt(" ".join(lines[max_lines - 1:]), cols)]   # the rest cannot fit
    return [excerpt(x, cols) for x in lines if x]


def pick_font(flow: Flow) -> str:
    """A font list for labels: an installed CJK font first when the flow has CJK text."""
    text = " ".join([*flow.steps, *(t for s in flow.steps.values() for _, t in prompts(s))])
    if not _CJK.search(text):
        return LATIN_FONTS
    installed = cjk_font()
    return ",".join(f for f in (installed, CJK_FONTS, "sans-serif") if f)


@lru_cache(maxsize=1)
def cjk_font() -> str:
    """The first installed font with Chinese glyphs (fontconfig), or "" (the viewer then picks one)."""
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return ""
    try:
        found = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    families = sorted({line.split(",")[0].strip() for line in found.splitlines() if line.strip()})
    preferred = [f for f in families if "Noto Sans CJK SC" in f or ("Micro Hei" in f and "Mono" not in f)]
    return (preferred or families or [""])[0]


# ---- files ------------------------------------------------------------------------------


def render(flow: Flow, out: Path, rankdir: str = "TB") -> Path:
    """Write the picture to `out`, format by suffix: .dot, .svg or .png (need Graphviz) or .html."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".dot":
        text = flow_to_dot(flow, rankdir=rankdir)
    elif suffix in (".svg", ".png"):
        if not shutil.which("dot"):
            raise UserError(f"cannot draw {out.name}: Graphviz 'dot' is not installed",
                            "apt-get install graphviz, or write -o flow.html (works without it) or -o flow.dot")
        if suffix == ".png":
            return _write(out, run_dot(flow_to_dot(flow, rankdir=rankdir), "png"))
        text = to_svg(flow_to_dot(flow, rankdir=rankdir))
    elif suffix in (".html", ".htm"):
        from ivr.flow.graphpage import page  # not at the top: graphpage imports this module

        svg = to_svg(flow_to_dot(flow, rankdir=rankdir, links=True)) if shutil.which("dot") else None
        text = page(flow, svg)
    else:
        raise UserError(f"cannot draw {out.name}: unknown format '{suffix or out.name}'",
                        "use -o flow.svg, flow.png, flow.html or flow.dot")
    return _write(out, text.encode("utf-8"))


def _write(out: Path, data: bytes) -> Path:
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}", "check that the folder exists") from exc
    return out


def to_svg(dot_source: str, timeout_s: float = 60.0) -> str:
    """Run Graphviz on DOT text."""
    return run_dot(dot_source, "svg", timeout_s).decode("utf-8")


def run_dot(dot_source: str, fmt: str, timeout_s: float = 60.0) -> bytes:
    """Run Graphviz on DOT text: `dot -T<fmt>` (svg, png)."""
    dot = shutil.which("dot")
    if not dot:
        raise UserError("Graphviz 'dot' is not installed", "apt-get install graphviz")
    try:
        done = subprocess.run([dot, f"-T{fmt}"], input=dot_source.encode("utf-8"), capture_output=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"Graphviz took longer than {timeout_s:.0f} s", "try -o flow.dot and a viewer") from exc
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise UserError(f"Graphviz failed: {stderr.splitlines()[0] if stderr else done.returncode}",
                        "this is a bug in ivr graph; write -o flow.dot and report it")
    if stderr:
        log.debug("graphviz: %s", stderr)
    return done.stdout
