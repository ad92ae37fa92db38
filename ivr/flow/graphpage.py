"""The self-contained HTML page of `ivr graph`: the picture (or a plain list of steps without
Graphviz), a legend, and a table of every step. The DOT and SVG it shows come from `graph.py`.
"""

import html

from ivr.flow.graph import EDGES, KINDS, exits, kind_of, node_detail, prompts
from ivr.flow.model import Flow, Step

_CSS = """
body{font:14px/1.45 system-ui,"Segoe UI",Helvetica,Arial,"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;
margin:1.5em;color:#0f172a}h1{margin:0 0 .2em}.meta{color:#475569;margin:0 0 1em}
.legend{display:flex;flex-wrap:wrap;gap:.3em 1.4em;margin:.5em 0 1em;font-size:13px}
.sw{display:inline-block;width:1.4em;height:.9em;border:1px solid #475569;vertical-align:middle;margin-right:.3em}
.ln{display:inline-block;width:2.2em;height:0;vertical-align:middle;margin-right:.3em}
.graph{overflow:auto;border:1px solid #cbd5e1;border-radius:6px;padding:.5em;max-height:85vh}
.graph svg{width:100%;height:auto}#actual:checked~.graph svg{width:auto;height:auto}.zoom{font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:.6em;align-items:flex-start}
.card{border:1px solid #64748b;border-radius:6px;padding:.35em .6em;min-width:12em;max-width:24em}
.card ul{margin:.2em 0 0;padding-left:1.1em}.kind{color:#475569;font-size:12px}
table{border-collapse:collapse;width:100%;margin-top:.5em}th,td{border:1px solid #cbd5e1;padding:.3em .5em;
text-align:left;vertical-align:top}th{background:#f1f5f9}td ul{margin:0;padding-left:1.1em}
.k{color:#64748b;font-size:12px}.start{background:#111827;color:#fff;border-radius:3px;padding:0 .3em;
font-size:11px}:target{outline:3px solid #f59e0b}.note{color:#92400e}
"""


def page(flow: Flow, svg: str | None) -> str:
    """A self-contained page: the picture (or a plain list without Graphviz), a legend, the steps."""
    ids = {name: i for i, name in enumerate(flow.steps)}
    e = html_text

    def link(name: str) -> str:
        return f'<a href="#step-{ids[name]}">{e(name)}</a>' if name in ids else e(name)

    def badge(name: str) -> str:
        return ' <span class="start">start</span>' if name == flow.start else ""

    def exit_list(step: Step) -> str:
        items = [f"<li>{e(label) + ' → ' if label else ''}{link(target)}</li>" for label, target, _ in
                 exits(step, flow)]
        return f"<ul>{''.join(items)}</ul>" if items else ""

    legend = "".join(f'<span><span class="sw" style="background:{fill}"></span>{e(text)}</span>'
                     for _, fill, text in KINDS.values())
    legend += "".join(f'<span><span class="ln" style="border-top:2px {css}"></span>{e(text)}</span>'
                      for _, css, text in EDGES.values())
    if svg is not None:
        picture = ('<input type="checkbox" id="actual"><label class="zoom" for="actual"> actual size (scroll)</label>'
                   f'<div class="graph">{svg[svg.find("<svg"):]}</div>')
    else:
        cards = []
        for prefix in dict.fromkeys(n.rpartition("/")[0] for n in flow.steps):
            group = [s for s in flow.steps.values() if s.name.rpartition("/")[0] == prefix]
            body = "".join(
                f'<div class="card" style="background:{KINDS[kind_of(s)][1]}"><b>{link(s.name)}</b> '
                f'<span class="kind">{kind_of(s)}</span>{badge(s.name)}'
                f'<div>{e(" ".join(node_detail(s, kind_of(s))))}</div>{exit_list(s)}</div>' for s in group)
            cards.append((f"<h3>subflow {e(prefix)}</h3>" if prefix else "") + f'<div class="cards">{body}</div>')
        picture = ('<p class="note">Graphviz (dot) is not installed, so the steps are listed instead of drawn '
                   "(apt-get install graphviz for the picture).</p>" + "".join(cards))
    rows = []
    for step in flow.steps.values():
        kind = kind_of(step)
        said = "".join(f'<li><span class="k">{e(k)}</span> {e(t)}</li>' for k, t in prompts(step))
        rows.append(f'<tr id="step-{ids[step.name]}"><td><b>{e(step.name)}</b>'
                    f"{badge(step.name)}</td>"
                    f'<td><span class="sw" style="background:{KINDS[kind][1]}"></span>{kind}</td>'
                    f"<td><ul>{said}</ul></td><td>{exit_list(step)}</td></tr>")
    globals_ = ""
    if flow.globals:
        grows = "".join(f"<tr><td>{e(c.name)}</td><td>{e(c.dtmf)}</td><td>{e(', '.join(c.intent.phrases[:6]))}"
                        f"</td><td>{link(c.goto) if c.goto else e(str(c.action))}</td></tr>" for c in flow.globals)
        globals_ = ("<h2>Global intents</h2><table><tr><th>intent</th><th>key</th><th>phrases</th>"
                    f"<th>goes to</th></tr>{grows}</table>")
    return (f'<!doctype html>\n<html lang="{e(flow.language)}"><head><meta charset="utf-8">'
            f"<title>{e(flow.name)} · ivr flow</title><style>{_CSS}</style></head><body>"
            f"<h1>{e(flow.name)}</h1><p class=\"meta\">{e(flow.path)} · {e(flow.language)} · {len(flow.steps)} steps"
            f" · starts at {link(flow.start)}</p><div class=\"legend\">{legend}</div>{picture}"
            "<h2>Steps</h2><table><tr><th>step</th><th>kind</th><th>says / does</th><th>goes to</th></tr>"
            f"{''.join(rows)}</table>{globals_}</body></html>\n")


def html_text(text: str) -> str:
    return html.escape(str(text), quote=True)
