"""The report as text tables for a terminal (`ivr report`)."""


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def table(title: str, header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    cells = [tuple(str(c) for c in header), *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
    out = ["", title, line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]] or ["(none)"]
    return out


def render(data: dict) -> str:
    where = f"{data['since_text']} to {data['until_text']} UTC" + (f", flow {data['flow']}" if data["flow"] else "")
    if not data["calls"]:
        return data["message"]
    total = data["calls"]
    c, t, a, h, cost = (data["containment"], data["transfers"], data["abandoned"], data["handle_time"],
                        data["cost_saved"])
    saved = (f"{cost['saved']:,.2f} {cost['currency']}".strip() + f" ({cost['contained_minutes']:,} contained min x "
             f"{cost['agent_cost_per_minute']} {cost['currency']}/min)".replace(" )", ")")
             if cost["saved"] is not None else "not configured (reports.agent_cost_per_minute in the serve config, "
             "or --cost-per-minute)")
    lines = [f"Calls {where}: {total:,}",
             *table("Summary", ("figure", "value", "rate"), [
                 ("contained (flow finished the call)", c["contained"], pct(c["rate"])),
                 ("  ... without a repeat call in 24 h", c["contained_no_repeat_24h"], pct(c["rate_no_repeat_24h"])),
                 ("transferred", t["calls"], pct(t["rate"])),
                 ("  caller asked", t["caller_asked"], pct(t["caller_asked_rate"])),
                 ("  machine gave up", t["machine_gave_up"], pct(t["machine_gave_up_rate"])),
                 ("  flow rule (watch)", t["flow_rule"], pct(t["flow_rule"] / total)),
                 ("abandoned (caller hung up first)", a["calls"], pct(a["rate"])),
                 ("average handle time", f"{h['average_s']} s" if h["average_s"] is not None else "-", ""),
                 ("cost saved", saved, "")]),
             *table("Outcomes", ("outcome", "calls", "share"),
                    [(k, v, pct(v / total)) for k, v in data["outcomes"].items()]),
             *table("Peak hours (UTC)", ("hour", "calls"), [(p["label"], p["calls"]) for p in data["peak_hours"]]),
             *table("Top intents", ("intent", "turns", "calls"),
                    [(i["intent"], i["turns"], i["calls"]) for i in data["intents"]]),
             *table("Transfer reasons", ("reason", "who", "calls"),
                    [(r["reason"], r["who"].replace("_", " "), r["calls"]) for r in data["transfers"]["reasons"]]),
             *table("Drop-off: where callers hung up", ("step", "calls", "of abandoned"),
                    [(d["step"], d["calls"], pct(d["share"])) for d in data["dropoff"]]),
             *table(f"Unmatched: what callers want that no flow handles ({data['unmatched']['turns']:,} turns)",
                    ("topic (most central utterance)", "turns", "distinct"),
                    [(tp["label"][:70], tp["turns"], tp["distinct"]) for tp in data["unmatched"]["topics"]]),
             *table("Sentiment of caller turns", ("period", "mean", "turns", "negative"),
                    [(s["label"], f"{s['mean']:+.3f}", s["turns"], s["negative"])
                     for s in data["sentiment"]["buckets"][-31:]]),
             *table("Usage per hotline", ("hotline", "calls", "minutes", "billed minutes"),
                    [(u["hotline"], u["calls"], f"{u['minutes']:,.1f}", u["billed_minutes"])
                     for u in data["hotlines"]])]
    return "\n".join(lines)
