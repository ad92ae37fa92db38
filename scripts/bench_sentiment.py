"""Sentiment benchmark: how well `ivr.sentiment` tells angry callers from the rest.

    .venv/bin/python scripts/bench_sentiment.py [--split dev|test|all] [--raw] [--tune] [--show]

Data: tests/data/sentiment/{en,zh}_{dev,test}.tsv (hand-written hotline utterances labelled
neg/neu/pos; the test split was committed before any tuning). Reports 3-class accuracy and, for
"negative detected" (the signal a flow acts on), precision and recall. `--raw` scores with the
libraries alone (no hotline lexicon, no damping; the same thresholds) to show what the lexicon adds.
`--tune` searches the thresholds on the dev split only and prints the best pair per language.
ms = median wall time of one `score()` call after loading.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchlib import machine_info

from ivr import sentiment

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "sentiment"
SHORT = {"negative": "neg", "neutral": "neu", "positive": "pos"}


def load(language: str, split: str) -> list[tuple[str, str]]:
    rows = []
    for line in (DATA / f"{language}_{split}.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            gold, text = line.split("\t", 1)
            rows.append((gold, text))
    return rows


def metrics(rows: list[tuple[str, str]], scores: list[float | None], t: sentiment.Thresholds) -> dict:
    def predict(v):
        if v is None:
            return "neu"
        return "neg" if v <= t.negative else "pos" if v >= t.positive else "neu"
    pred = [predict(v) for v in scores]
    gold = [g for g, _ in rows]
    tp = sum(p == g == "neg" for p, g in zip(pred, gold, strict=True))
    fp = sum(p == "neg" != g for p, g in zip(pred, gold, strict=True))
    fn = sum(g == "neg" != p for p, g in zip(pred, gold, strict=True))
    return {"n": len(rows), "accuracy": sum(p == g for p, g in zip(pred, gold, strict=True)) / len(rows),
            "neg_precision": tp / (tp + fp) if tp + fp else 0.0, "neg_recall": tp / (tp + fn) if tp + fn else 0.0,
            "pred": pred}


def tune(rows, scores) -> tuple[sentiment.Thresholds, float]:
    """Best (accuracy, then negative F1) thresholds on these rows, on a 0.05 grid."""
    best, best_key = None, (-1.0, -1.0)
    grid = [round(-0.9 + 0.05 * i, 2) for i in range(37)]
    for neg in grid:
        for pos in (g for g in grid if g > neg):
            m = metrics(rows, scores, sentiment.Thresholds(neg, pos))
            p, r = m["neg_precision"], m["neg_recall"]
            key = (m["accuracy"], 2 * p * r / (p + r) if p + r else 0.0)
            if key > best_key:
                best, best_key = sentiment.Thresholds(neg, pos), key
    return best, best_key[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["dev", "test", "all"], default="all")
    ap.add_argument("--raw", action="store_true", help="libraries only, without the hotline lexicon")
    ap.add_argument("--tune", action="store_true", help="search thresholds on the dev split")
    ap.add_argument("--show", action="store_true", help="print every misclassified utterance")
    args = ap.parse_args(argv)
    if args.raw:
        sentiment._EN_CUES.clear()
        sentiment._ZH_CUES.clear()
        sentiment._EN_WORDS.clear()
        sentiment._EN_NEUTRAL_WORDS = ()
        sentiment._ZH_DAMPING = 1.0
    print(f"machine: {machine_info()}")
    splits = ["dev", "test"] if args.split == "all" else [args.split]
    print("lang split    n  3-class acc  neg precision  neg recall  ms/utterance")
    for lang in ("en", "zh"):
        sentiment.preload(lang)
        for split in splits:
            rows = load(lang, split)
            scores, times_ms = [], []
            for _, text in rows:
                t0 = time.perf_counter()
                scores.append(sentiment.score(text, lang))
                times_ms.append((time.perf_counter() - t0) * 1000)
            m = metrics(rows, scores, sentiment.THRESHOLDS[lang])
            print(f"{lang:4} {split:5} {m['n']:4}  {m['accuracy']:11.1%}  {m['neg_precision']:13.1%}  "
                  f"{m['neg_recall']:10.1%}  {statistics.median(times_ms):.3f}")
            if args.show:
                for (gold, text), p, v in zip(rows, m["pred"], scores, strict=True):
                    if p != gold:
                        print(f"      {gold}->{p} {v:+.3f} {text}")
            if args.tune and split == "dev":
                best, acc = tune(rows, scores)
                print(f"      dev optimum: negative <= {best.negative}, positive >= {best.positive} ({acc:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
