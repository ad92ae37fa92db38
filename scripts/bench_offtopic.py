"""The off-topic guard's margin, chosen on the read parts of the NLU evaluation set (never the newest sealed one).

    .venv/bin/python scripts/bench_offtopic.py [--parts dev dev2 ...] [--margins -0.02 0 0.02] [--show 0.0]

understand.rank holds an answer under the confirm band when an off-topic sentence (ivr/flow/builtin/offtopic.*.yaml:
chit-chat, weather, asides, half sentences) is nearer to what the caller said than the answer's nearest phrase plus
OFF_TOPIC_MARGIN. Every utterance is ranked once without the guard; each margin is then applied to the ranked
candidates exactly as `rank` applies it (an answer's score held at OFF_TOPIC_CAP), so the sweep costs one pass.
Printed per matcher (plain, built-ins, intent library), language and margin, pooled over the parts: right at once,
right after a "yes", wrong taken silently, out of scope rejected, and how many in-scope answers the guard lost and
out-of-scope sentences it won against no guard.
"""

import argparse

from bench_nlu import TUNING_PARTS, load_flow, load_split, outcomes, table

from ivr.flow import semantic, understand

WAYS = ("plain", "built-ins", "library")   # bench_nlu's chosen matcher on the flows untagged, tagged, with the library


def ranked_rows(way: str, lang: str, parts: tuple[str, ...]) -> list[tuple[str, str, str, list, float]]:
    """(part, text, expected, candidates without the guard, off-topic cosine) for every utterance."""
    flow = load_flow(lang, builtin=way != "plain", library=way == "library")
    saved, understand.OFF_TOPIC_MARGIN = understand.OFF_TOPIC_MARGIN, float("inf")
    rows = []
    try:
        for part in parts:
            for step, text, expected in load_split(lang, part, flow, alone=True):
                mine, globals_ = flow["steps"][step]
                ranked = understand.rank(text, mine, globals_, meaning=True, embed="unsure")
                off = 0.0
                if any(c.meaning for c in ranked):      # rank embedded the sentence (cached): the guard applies
                    offered = (*mine, *globals_)
                    off = understand.off_topic(semantic.sentence_vector(text), offered,
                                               understand.language(offered))[0]
                rows.append((part, text, expected, ranked, off))
    finally:
        understand.OFF_TOPIC_MARGIN = saved
    return rows


def guarded(ranked: list, off: float, margin: float | None) -> list[tuple[str, float]]:
    """The candidates as `rank` would give them with the guard at `margin` (None: no guard), best first."""
    out = []
    for c in ranked:
        score = c.score
        if margin is not None and understand.held_off_topic(score, c.meaning, off, margin):
            score = understand.OFF_TOPIC_CAP
        out.append((c.name, score, c.group != "step"))
    return [(n, s) for n, s, _ in sorted(out, key=lambda t: (-t[1], t[2]))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="*", default=list(TUNING_PARTS), choices=TUNING_PARTS)
    ap.add_argument("--margins", nargs="*", type=float, default=[-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03])
    ap.add_argument("--ways", nargs="*", default=list(WAYS), choices=WAYS)
    ap.add_argument("--lang", nargs="*", default=["en", "zh"])
    ap.add_argument("--show", type=float, help="print every decision this margin changes")
    args = ap.parse_args()
    lines = []
    for way in args.ways:
        for lang in args.lang:
            rows = ranked_rows(way, lang, tuple(args.parts))
            base = [guarded(r, off, None) for *_, r, off in rows]
            for margin in [None, *args.margins]:
                now = [guarded(r, off, margin) for *_, r, off in rows]
                o = outcomes([(e, g) for (_, _, e, _, _), g in zip(rows, now, strict=True)])
                lost = won = 0
                for (part, text, expected, _, off), b, g in zip(rows, base, now, strict=True):
                    before = b[0][0] if b and b[0][1] >= 0.6 else "none"
                    after = g[0][0] if g and g[0][1] >= 0.6 else "none"
                    if before == after:
                        continue
                    lost += expected != "none" and before == expected
                    won += expected == "none" and after == "none"
                    if args.show is not None and margin == args.show:
                        print(f"  {way} {lang} {part:6} {text!r:60} want {expected:14} {before} -> {after}"
                              f"  (off {off:.3f}, {b[0][0]} {b[0][1]:.2f})")
                lines.append([way, lang, "none" if margin is None else margin, o["n"], o["right_at_once"],
                              o["right_after_confirm"], o["wrong_silent"], o["oos_rejected"], lost, won])
    print(f"Off-topic guard, parts {' '.join(args.parts)}:\n")
    print(table(["matcher", "lang", "margin", "utterances", "right at once %", "after a yes %", "wrong silently %",
                 "OOS rejected %", "in-scope lost", "OOS won"], lines))


if __name__ == "__main__":
    main()
