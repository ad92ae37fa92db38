"""The language menu by voice: how often the first words a caller says pick the right language.

    .venv/bin/python scripts/bench_language_menu.py [--json build/bench/language_menu.json]

What the `language:` step of flows/retail/retail.yaml does with a caller's first utterance
(ivr/flow/languages.py: a word naming a language, else the script of the recognised text),
heard by each recognizer the call loop could use for the menu: whisper's language id choosing
the language's recognizer (ivr/asr/language_id.py, what `ivr serve` does when a multilingual
whisper serves one of the menu's languages), whisper base pinned to Mandarin, tiny.en. Sets, neither used to write or
tune the detection: the 40 Mandarin turns of scripts/bench_asr_zh.py (espeak-ng pinyin
voice, tests/mandarin.py) and the 62 English held-out FAQ questions of
tests/data/nlu/faq_heldout_en.yaml (piper voice); each with 300 ms of silence either side,
through the 8 kHz mu-law line. Those are requests, not "English"/"普通话": the harder case
of a caller who skips the menu and says what they want.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import yaml
from benchlib import machine_info

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_asr_zh import SET as ZH_SET

from ivr.asr.bundled import installed_base_model
from ivr.asr.language_id import LanguageIdAsr
from ivr.asr.whisper import WhisperAsr, bundled_model_path
from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from ivr.flow.languages import pick_by_words
from ivr.flow.loader import load_flow
from ivr.tts.registry import load_tts
from tests.mandarin import PinyinEspeak

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    menu = load_flow(ROOT / "flows" / "retail" / "retail.yaml").steps["choose_language"].language_menu
    english = [q for q, _ in yaml.safe_load((ROOT / "tests/data/nlu/faq_heldout_en.yaml").read_text())["questions"]]
    cases = [("zh-CN", text, PinyinEspeak()) for _, text, _ in ZH_SET]
    piper = load_tts("piper", "en-US")
    cases += [("en-US", text, piper) for text in english]
    base, tiny = WhisperAsr(installed_base_model(), language="zh"), WhisperAsr(bundled_model_path())
    recognizers = {"language id, then base (zh) or tiny.en": LanguageIdAsr(base, {"zh": base, "en": tiny}),
                   "whisper base (zh)": base, "whisper tiny.en": tiny}
    audio = [resample(render([("pause", 300), ("say", text), ("pause", 300)], voice), LINE_RATE_HZ, 16000)
             for _, text, voice in cases]
    results: dict = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "sets": {
        "zh-CN": sum(1 for c in cases if c[0] == "zh-CN"), "en-US": sum(1 for c in cases if c[0] == "en-US")},
        "recognizers": {}}
    for name, asr in recognizers.items():
        right = {"zh-CN": 0, "en-US": 0}
        wrong: list = []
        ms: list[float] = []
        for (want, text, _), pcm in zip(cases, audio, strict=True):
            t0 = time.process_time()
            session = asr.session()   # as the menu's Listen: no phrase hints (they made whisper say "英文")
            session.feed(pcm)
            heard = session.finish().text
            ms.append((time.process_time() - t0) * 1000)
            option = pick_by_words(menu, heard)
            got = option.tag if option else None
            if got == want:
                right[want] += 1
            else:
                wrong.append({"said": text, "heard": heard, "want": want, "got": got})
        results["recognizers"][name] = {
            "right": right, "accuracy": {k: round(v / results["sets"][k], 3) for k, v in right.items()},
            "cpu_ms_per_turn": round(sum(ms) / len(ms), 1), "wrong": wrong[:12]}
        print(f"{name}: zh {right['zh-CN']}/{results['sets']['zh-CN']}, en {right['en-US']}/"
              f"{results['sets']['en-US']}, {sum(ms) / len(ms):.0f} ms CPU per turn")
        for w in wrong[:6]:
            print(f"   {w['want']}: said {w['said']!r} heard {w['heard']!r} -> {w['got']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
