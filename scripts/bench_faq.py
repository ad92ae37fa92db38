"""Knowledge base figures: recall on reworded questions, and FAQ-versus-choices arbitration.

    .venv/bin/python scripts/bench_nlu.py --faq [--split dev|test]

1. Recall: each FAQ file against held-out questions written without looking back at it
   (retail en/zh: tests/data/nlu/faq_heldout_*.yaml; telecom en: tests/data/nlu/hotlines/faq_telecom_*).
2. Arbitration: the retail hotline's menu (tests/data/nlu/hotlines/flows_*.yaml) with `faq: true` and the
   retail FAQ. Menu utterances of the split must still reach their choice (FAQ steals = an in-scope
   menu request answered from the FAQ); FAQ questions (the even ones for dev, odd for test) must be
   answered right. Done for several `faq_margin` values: the FAQ answers only when it scores at least
   its threshold and beats the best choice by the margin.
"""

from pathlib import Path

import yaml
from bench_nlu import ACCEPT, CONFIRM, load_flow, load_split

from ivr.flow import understand
from ivr.flow.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parent.parent
NLU = ROOT / "tests" / "data" / "nlu"
SETS = {
    "retail en": (ROOT / "flows/faq/retail_en.yaml", NLU / "faq_heldout_en.yaml"),
    "retail zh": (ROOT / "flows/faq/retail_zh.yaml", NLU / "faq_heldout_zh.yaml"),
    "telecom en": (NLU / "hotlines/faq_telecom_en.yaml", NLU / "hotlines/faq_telecom_heldout_en.yaml"),
}
MARGINS = ("old", 0.0, 0.05, 0.1, 0.15, 0.2, 0.3)   # old: a choice under accept lost to the FAQ (main before)


def recall() -> dict:
    out = {}
    for name, (faq, held) in SETS.items():
        kb = load_knowledge(faq)
        questions = yaml.safe_load(held.read_text(encoding="utf-8"))["questions"]
        right = wrong = missed = oos = oos_ok = 0
        for text, expected in questions:
            found = kb.answer(text)
            if expected == "none":
                oos += 1
                oos_ok += found is None
            elif found is None:
                missed += 1
            elif found.id == expected:
                right += 1
            else:
                wrong += 1
        answerable = len(questions) - oos
        out[name] = {"entries": len(kb.entries), "questions": len(questions), "answered_right": right,
                     "answered_wrong": wrong, "not_answered": missed, "answerable": answerable,
                     "recall_pct": round(100 * right / answerable, 1), "oos": oos, "oos_rejected": oos_ok}
        print(f"  {name:11} {len(kb.entries)} entries: {right}/{answerable} answered right, {wrong} wrong, "
              f"{missed} not answered; out of scope {oos_ok}/{oos} rejected")
    return out


def arbitration(split: str, library: bool = False) -> dict:
    """`library`: the menu's answers tagged with the intent library (and the globals with the built-ins)."""
    out = {}
    for lang in ("en", "zh"):
        flow = load_flow(lang, builtin=library, library=library)
        kb = load_knowledge(SETS[f"retail {lang}"][0])
        step, globals_ = flow["steps"]["retail"]
        menu = [(t, e) for s, t, e in load_split(lang, split, flow) if s == "retail" and e != "none"]
        held = yaml.safe_load(SETS[f"retail {lang}"][1].read_text(encoding="utf-8"))["questions"]
        faq_qs = [(t, e) for i, (t, e) in enumerate(held) if e != "none" and i % 2 == (split == "test")]
        rows = []
        for text, expected in [*menu, *faq_qs]:
            ranked = understand.rank(text, step, globals_)
            rows.append((text, expected, ranked[0] if ranked else None, kb.answer(text)))
        for margin in MARGINS:
            stolen = faq_right = faq_wrong_choice = menu_right = 0
            for _, expected, top, faq in rows:
                is_menu = expected in flow["intents"]
                if margin == "old":
                    takes_faq = faq is not None and (top is None or top.score < ACCEPT)
                else:
                    unsure = top is None or top.score < CONFIRM
                    takes_faq = faq is not None and (unsure or faq.score >= top.score + margin)
                if is_menu:
                    stolen += takes_faq
                    menu_right += not takes_faq and top is not None and top.name == expected and top.score >= ACCEPT
                else:
                    faq_right += takes_faq and faq.id == expected
                    faq_wrong_choice += not takes_faq and top is not None and top.score >= ACCEPT
            out.setdefault(lang, {})[str(margin)] = {
                "menu": len(menu), "menu_stolen_by_faq": stolen, "menu_right_at_once": menu_right,
                "faq_questions": len(faq_qs), "faq_answered_right": faq_right, "faq_taken_as_choice": faq_wrong_choice}
            print(f"  {lang} margin {margin!s:5}: menu requests stolen by the FAQ {stolen}/{len(menu)}, "
                  f"menu right at once {menu_right}; FAQ questions answered right {faq_right}/{len(faq_qs)}, "
                  f"taken as a menu choice {faq_wrong_choice}")
    return out


def run_faq(split: str = "dev") -> dict:
    print("FAQ recall on held-out questions:")
    result = {"recall": recall()}
    print(f"\nFAQ against the retail menu's choices ({split} part):")
    result["arbitration"] = arbitration(split)
    print(f"\nThe same with the menu's answers tagged with the intent library ({split} part):")
    result["arbitration_library"] = arbitration(split, library=True)
    return result
