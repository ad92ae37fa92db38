"""`ivr graph`: the DOT of a flow, SVG through Graphviz, and the HTML page with and without it."""

import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.errors import UserError
from ivr.flow import graph
from ivr.flow.graph import excerpt, flow_to_dot, render, width, wrap
from ivr.flow.loader import load_flow

ROOT = Path(__file__).resolve().parent.parent
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' is not installed (apt-get install graphviz)")
SVG_NS = {"svg": "http://www.w3.org/2000/svg"}

SMALL = """
    name: small
    agent_line: sip:agents@127.0.0.1
    knowledge: faq.yaml
    subflows: {verify: sub/verify.yaml}
    globals:
      agent:  {say: ["agent"], dtmf: "0", goto: to_agent}
      repeat: {say: ["repeat"], dtmf: "*", action: repeat}
    start: greet
    steps:
      greet: {say: "Hello.", next: main}
      main:
        ask: "Say track or press 1."
        choices:
          track: {say: ["track [my] order"], dtmf: "1", goto: check}
          pin:   {say: ["my pin"], goto: pin}
        faq: true
        after_faq: main
        max_attempts: 2
        on_fail: to_agent
      pin:
        run: verify
        next: bye
      check:
        http: {get: "http://127.0.0.1:9/orders", save: order}
        on_error: to_agent
        next:
          - {if: "order.status == 'shipped'", goto: shipped}
          - {goto: bye}
      shipped: {say: "It shipped.", next: bye}
      to_agent:
        say: "Connecting you."
        transfer: {to: "{{ agent_line }}", reason: help}
      bye: {say: "Goodbye.", hangup: true}
"""
VERIFY = """
    start: ask_pin
    steps:
      ask_pin:
        ask: Your PIN?
        collect: {slot: pin, type: digits, length: 4, sensitive: true}
        next: back
      back: {return: true}
"""
FAQ = """
    language: en-US
    faqs:
      - id: returns
        questions: ["what is your return policy"]
        answer: "Returns are free within 30 days."
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return folder / next(iter(files))


@pytest.fixture
def small(tmp_path):
    return load_flow(write(tmp_path, {"flow.yaml": SMALL, "sub/verify.yaml": VERIFY, "faq.yaml": FAQ}))


def big_flow_yaml(branches: int = 9) -> str:
    """main menu + `branches` x (say -> http -> say) + agent + bye: 2 + 3 * branches steps."""
    lines = ["name: big", "agent_line: sip:agents@127.0.0.1", "start: main", "steps:",
             "  main:", '    ask: "Pick one of nine services."', "    choices:"]
    lines += [f'      s{i}: {{say: ["service {i}"], dtmf: "{i}", goto: intro{i}}}' for i in range(1, branches + 1)]
    lines += ["    on_fail: to_agent"]
    for i in range(1, branches + 1):
        lines += [f'  intro{i}: {{say: "Service {i}, one moment please.", next: fetch{i}}}',
                  f"  fetch{i}:",
                  f'    http: {{get: "http://127.0.0.1:9/s/{i}", save: r{i}}}',
                  "    on_error: to_agent",
                  f'    next: [{{if: "r{i}.ok", goto: done{i}}}, {{goto: to_agent}}]',
                  f'  done{i}: {{say: "All done with {i}.", next: bye}}']
    lines += ['  to_agent: {say: "Connecting.", transfer: "sip:agents@127.0.0.1"}',
              '  bye: {say: "Goodbye.", hangup: true}']
    return "\n".join(lines) + "\n"


def svg_titles(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [g.find("svg:title", SVG_NS).text for g in root.iter("{http://www.w3.org/2000/svg}g")
            if g.get("class") == "node"]


# ---- DOT ------------------------------------------------------------------------------


def test_dot_of_a_small_flow_has_nodes_edges_and_labels(small):
    dot = flow_to_dot(small, fontname="Helvetica")
    assert dot.startswith("digraph flow {") and dot.rstrip().endswith("}")
    assert '"/start" -> "greet"' in dot
    assert '"main" -> "check" [label="track · 1"' in dot
    assert '"main" -> "pin" [label="pin"' in dot
    assert "\"check\" -> \"shipped\" [label=\"if order.status == 'shipped'\"" in dot
    assert '"check" -> "bye" [label="else"' in dot
    assert '"main" -> "to_agent" [label="on_fail (2 tries)", style=dashed' in dot
    assert '"check" -> "to_agent" [label="on_error", style=dashed, color="#dc2626"' in dot
    assert '"main" -> "main" [label="after_faq", style=dotted' in dot
    assert '"pin" -> "verify/ask_pin" [label="run", style=bold' in dot
    assert '"verify/ask_pin" -> "verify/back" [label="got pin"' in dot
    # node shapes by kind, the start step marked
    assert '"greet" [shape=note' in dot and "greet  ▶ start" in dot
    assert '"main" [shape=box' in dot and '"check" [shape=component' in dot and '"pin" [shape=box3d' in dot
    assert '"to_agent" [shape=cds, fillcolor="#fb923c"' in dot and '"bye" [shape=octagon' in dot
    assert '"verify/back" [shape=invhouse' in dot
    # the subflow is a cluster holding its steps
    cluster = dot[dot.index('subgraph "cluster_0"'):]
    assert 'label="subflow verify"' in cluster.splitlines()[0]
    assert '"verify/ask_pin" [' in cluster[: cluster.index("}")]


def test_globals_are_one_box_not_an_edge_from_every_step(small):
    dot = flow_to_dot(small, fontname="Helvetica")
    assert dot.count('"/globals" [') == 1
    assert "agent · 0 → to_agent\\l" in dot and "repeat · * (repeat)\\l" in dot
    assert dot.count('-> "to_agent" [label="agent"') == 1
    assert '"/globals" -> "to_agent" [label="agent"' in dot


def test_dot_is_deterministic(tmp_path, small):
    again = load_flow(write(tmp_path / "copy", {"flow.yaml": SMALL, "sub/verify.yaml": VERIFY, "faq.yaml": FAQ}))
    assert flow_to_dot(small) == flow_to_dot(again)


def test_special_characters_are_escaped(tmp_path):
    path = write(tmp_path, {"flow.yaml": r'''
        name: 'quo"te'
        start: "a \"b\""
        steps:
          'a "b"':
            say: 'He said "hi" \ back\slash & <b>bold</b> {x} [y] | z'
            next: c
          c: {say: "x", next: d}
          d: {say: '%s', hangup: true}
    ''' % ("\\" * 600)})
    dot = flow_to_dot(load_flow(path), fontname="Helvetica")
    assert r'"a \"b\"" [shape=note' in dot
    assert r'He said \"hi\" \\ back\\slash &amp; <b>bold</b>' in dot
    assert r'label="quo\"te (en-US)"' in dot
    if HAS_DOT:
        svg = graph.to_svg(dot)
        assert "He said &quot;hi&quot; \\ back\\slash &amp; &lt;b&gt;bold" in svg
        assert 'a &quot;b&quot;' in svg
        assert "\\" * 20 in svg      # the long tooltip of backslashes was cut before escaping
    with pytest.raises(UserError, match="unknown direction"):
        flow_to_dot(load_flow(path), rankdir="LR];x")


def test_long_prompts_are_cut_and_conditions_truncated(tmp_path):
    path = write(tmp_path, {"flow.yaml": """
        start: a
        steps:
          a:
            say: "This is a very long prompt that goes on and on about many things the caller never hears."
            next:
              - {if: "caller.tier == 'gold' and caller.balance > 1000 and not caller.blocked", goto: b}
              - {goto: b}
          b: {say: "{% if x %}Hi {{ caller.name | upper }}{% endif %}.", hangup: true}
    """})
    dot = flow_to_dot(load_flow(path), fontname="Helvetica")
    label = dot.split('"a" [')[1].split('label="')[1].split('", tooltip')[0]
    lines = label.split("\\n")
    assert len(lines) == 3 and lines[2].endswith("…") and all(width(x) <= 30 for x in lines[1:])
    assert "never hears" in dot   # the whole prompt is in the tooltip
    cond = dot.split('"a" -> "b" [label="')[1].split('"')[0]
    assert cond.startswith("if caller.tier == 'gold'") and cond.endswith("…") and width(cond) <= 31
    assert "Hi {caller.name}." in dot     # template markup shortened in labels


def test_mandarin_names_and_prompts(tmp_path):
    path = write(tmp_path, {"flow.yaml": """
        name: 零售热线
        language: zh-CN
        start: 问候
        steps:
          问候: {say: "感谢致电ACME，请问有什么可以帮您？我们的营业时间是周一到周五。", next: 主菜单}
          主菜单:
            ask: "请说查询订单，或者按1。"
            choices:
              查询: {say: ["查[询]订单"], dtmf: "1", goto: 再见}
          再见: {say: "再见。", hangup: true}
    """})
    flow = load_flow(path)
    dot = flow_to_dot(flow)
    assert '"主菜单" -> "再见" [label="查询 · 1"' in dot and 'label="零售热线 (zh-CN)"' in dot
    greet = dot.split('"问候" [')[1].split('label="')[1].split('", tooltip')[0].split("\\n")
    assert greet[1].startswith("“感谢致电ACME") and all(width(x) <= 30 for x in greet[1:])
    installed = graph.cjk_font()
    assert graph.pick_font(flow).startswith(installed or graph.CJK_FONTS)
    if HAS_DOT:
        svg = render(flow, tmp_path / "zh.svg").read_text(encoding="utf-8")
        assert set(svg_titles(svg)) >= {"问候", "主菜单", "再见"}
        assert "请说查询订单" in svg


def test_text_width_helpers():
    assert width("abc") == 3 and width("订单") == 4
    assert excerpt("short", 10) == "short"
    assert excerpt("订单订单订单订单", 9) == "订单订单…" and width(excerpt("a" * 50, 20)) == 20
    assert wrap("one two three four five six", 10, 2) == ["one two", "three fou…"]
    assert wrap("查询订单退货营业时间", 8, 3) == ["查询订单", "退货营业", "时间"]


# ---- SVG and HTML ---------------------------------------------------------------------


@needs_dot
def test_thirty_step_flow_renders_to_svg(tmp_path):
    flow = load_flow(write(tmp_path, {"flow.yaml": big_flow_yaml()}))
    assert len(flow.steps) == 30
    out = render(flow, tmp_path / "big.svg")
    titles = svg_titles(out.read_text(encoding="utf-8"))
    assert sorted(t for t in titles if not t.startswith("/")) == sorted(flow.steps)   # 30 step node groups
    assert len(titles) == 31                                                           # + the start marker


@needs_dot
def test_html_page_embeds_the_svg_legend_and_steps(tmp_path, small):
    page = render(small, tmp_path / "small.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 1 and "<script" not in page and "<link" not in page
    assert "transfers the call" in page and "on_error: HTTP failed" in page          # legend
    for i, name in enumerate(small.steps):
        assert f'<tr id="step-{i}"><td><b>{name}</b>' in page
    assert 'href="#step-1"' in page                  # nodes link to their table rows
    assert "Say track or press 1." in page and "Global intents" in page


def test_html_falls_back_to_a_list_without_graphviz(tmp_path, small, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    page = render(small, tmp_path / "small.html").read_text(encoding="utf-8")
    assert "<svg" not in page and "Graphviz (dot) is not installed" in page
    assert page.count('class="card"') == len(small.steps)
    assert "<h3>subflow verify</h3>" in page
    ids = {name: i for i, name in enumerate(small.steps)}
    assert f'track · 1 → <a href="#step-{ids["check"]}">check</a>' in page


def test_svg_without_graphviz_is_a_user_error(tmp_path, small, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    with pytest.raises(UserError) as info:
        render(small, tmp_path / "small.svg")
    assert "apt-get install graphviz" in str(info.value) and not (tmp_path / "small.svg").exists()


def test_dot_file_and_unknown_format(tmp_path, small):
    assert render(small, tmp_path / "f.dot").read_text(encoding="utf-8") == flow_to_dot(small)
    with pytest.raises(UserError, match="unknown format"):
        render(small, tmp_path / "f.gif")
    with pytest.raises(UserError, match="cannot write"):
        render(small, tmp_path / "missing" / "f.dot")


def test_png_is_drawn_by_graphviz(tmp_path, small):
    data = render(small, tmp_path / "flow.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_png_without_graphviz_is_a_user_error(tmp_path, small, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="Graphviz 'dot' is not installed"):
        render(small, tmp_path / "flow.png")


def test_sensitive_slots_are_marked_and_set_only_steps_are_steps(tmp_path, small):
    dot = flow_to_dot(small, fontname="Helvetica")
    ask_pin = next(line for line in dot.splitlines() if line.strip().startswith('"verify/ask_pin" ['))
    assert "[pin: digits · sensitive]" in ask_pin and 'color="#b91c1c"' in ask_pin and "peripheries=2" in ask_pin
    assert "sensitive: masked" in ask_pin   # the tooltip says what it means
    path = write(tmp_path, {"flow.yaml": """
        steps:
          count:
            set: {tries: "{{ 1 }}", topic: billing}
            next: [{if: "tries > 2", goto: bye}, {goto: ask}]
          ask: {ask: "Yes?", choices: {yes: {say: ["yes"], goto: decide}}}
          decide:
            next: [{if: "tries", goto: bye}, {goto: ask}]
          bye: {say: Bye., hangup: true}
    """})
    dot = flow_to_dot(load_flow(path), fontname="Helvetica")
    assert '"count" [shape=box, fillcolor="#f1f5f9", label="count  ▶ start\\nset tries = 1\\ntopic = billing"' in dot
    assert '"decide" [shape=diamond' in dot   # only chooses: a decision


def test_the_flows_on_error_step_is_drawn(tmp_path):
    path = write(tmp_path, {"flow.yaml": """
        on_error: sorry
        steps:
          hi: {say: "Hi {{ caller.name }}.", hangup: true}
          sorry: {say: Sorry., hangup: true}
    """})
    dot = flow_to_dot(load_flow(path), fontname="Helvetica")
    assert '"/errors" -> "sorry" [label="on_error", style=dashed' in dot
    assert render(load_flow(path), tmp_path / "f.svg").read_text(encoding="utf-8").startswith("<?xml")


def test_demo_flow_renders(tmp_path):
    flow = load_flow(ROOT / "flows" / "demo.yaml")
    page = render(flow, tmp_path / "demo.html").read_text(encoding="utf-8")
    assert all(f"<b>{name}</b>" in page for name in flow.steps)
