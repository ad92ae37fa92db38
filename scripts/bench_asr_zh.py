"""Spoken Mandarin: character error rate, intent accuracy from audio, CPU per turn (whisper base).

    .venv/bin/python scripts/bench_asr_zh.py [--voice espeak|kokoro] [--json build/bench/asr_zh.json]

The set (SET below, 40 caller turns) was written for this benchmark after the decoder prompt
was tuned on a different 16-clip set (tests/ and ivr/asr/zh_text.py say which): 20 menu
requests (10 worded as the flow's phrases, 10 reworded), 10 six-digit order numbers and 10
yes/no answers. Caller audio (--voice): espeak-ng `cmn-latn-pinyin` reading pypinyin TONE3
(the default test voice, tests/mandarin.py) or Kokoro-82M's `jm_kumo` style speaking Mandarin
phonemes (a neural voice, tests/mandarin_kokoro.py; its style was picked on 12 other sentences,
not on SET), 300 ms of silence either side, through the 8 kHz mu-law line. "synth CPU" is the
voice's time per turn (CPU: this process only, so Kokoro's one onnxruntime thread but not espeak-ng's
child process; wall: both).

Intent is what the flow interpreter does with the transcript, on BENCH_FLOW (an ops-style
hotline written from intent names; globals included): the step it goes to (menu), the slot
value (numbers: all six digits right), yes/no. "text" feeds the reference text itself: the
ceiling the NLU gives with perfect recognition. CER after normalisation (simplified, no
punctuation, 幺/两 -> 一/二, Arabic digits as Mandarin digits). CPU = process time of one
decode (session feed + finish), 2 threads; the machine is shared, so it is indicative.
"""

import argparse
import json
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from benchlib import machine_info
from rapidfuzz.distance import Levenshtein

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ivr.asr.bundled import installed_base_model
from ivr.asr.whisper import WhisperAsr
from ivr.asr.zh_text import clean_zh
from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from ivr.events import CallStarted, Heard
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow
from ivr.flow.state import CallState
from tests.mandarin import VOICES, caller_voice

BENCH_FLOW = """
name: bench-zh
language: zh-CN
agent_line: sip:agents@127.0.0.1
globals:
  agent:   {say: ["人工", "人工客服", "转人工"], goto: to_agent}
  repeat:  {say: ["再说一遍", "重复一遍"], action: repeat}
  menu:    {say: ["主菜单", "返回主菜单"], goto: main}
  goodbye: {say: ["再见", "没有了"], goto: bye}
start: main
steps:
  main:
    ask: "请问您需要什么帮助？"
    choices:
      track:   {say: ["查询订单", "查订单", "订单到哪了"], goto: track}
      returns: {say: ["退货", "我要退货", "退款"], goto: returns}
      hours:   {say: ["营业时间", "几点开门"], goto: hours}
  number:
    ask: "请说您的订单号。"
    collect: {slot: order_id, type: digits, length: 6}
    next: confirm
  confirm:
    ask: "对吗？"
    collect: {slot: ok, type: yes_no}
    next: bye
  track: {say: "好的。", next: number}
  returns: {say: "好的。", next: bye}
  hours: {say: "九点到六点。", next: bye}
  to_agent: {say: "转接。", transfer: {to: "{{ agent_line }}"}}
  bye: {say: "再见。", hangup: true}
"""

MENU = [("查询订单", "track"), ("我要退货", "returns"), ("营业时间", "hours"), ("人工客服", "to_agent"),
        ("再说一遍", "main"), ("返回主菜单", "main"), ("再见", "bye"), ("退款", "returns"),
        ("几点开门", "hours"), ("转人工", "to_agent"),
        ("帮我查一下订单", "track"), ("我的订单到哪了", "track"), ("这个东西我想退掉", "returns"),
        ("我要申请退款", "returns"), ("你们几点开门", "hours"), ("营业时间是几点", "hours"),
        ("我要找人工客服", "to_agent"), ("请帮我转人工", "to_agent"), ("没有了谢谢", "bye"), ("请再说一遍", "main")]
NUMBERS = ["九六三七一五", "三七五一八七", "二二二六七四", "八七三二一八", "六三六二零八", "七六五九零四",
           "九五一八七五", "四四五一零八", "五五六七八五", "九八七四一六"]
YESNO = [("是的", True), ("对", True), ("没错", True), ("好的", True), ("是", True),
         ("不是", False), ("不对", False), ("错了", False), ("不", False), ("不用", False)]
SET = [("menu", t, want) for t, want in MENU] + [("number", t, t) for t in NUMBERS] + \
      [("yesno", t, want) for t, want in YESNO]
ZH_DIGITS = "零一二三四五六七八九"


def norm(text: str) -> str:
    text = clean_zh(text).replace("幺", "一").replace("两", "二")
    return "".join(ZH_DIGITS[int(c)] if c.isascii() and c.isdigit() else c for c in text)


def interpreter() -> Interpreter:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_zh.yaml"
        path.write_text(textwrap.dedent(BENCH_FLOW), encoding="utf-8")
        return Interpreter(load_flow(path))


STEP = {"menu": "main", "number": "number", "yesno": "confirm"}


def listening(interp: Interpreter, kind: str) -> tuple[CallState, tuple[str, ...]]:
    """A call listening at the step for `kind`, and the phrases that step gives the recognizer."""
    state, _ = interp.handle(CallState(), CallStarted(at_s=0))
    step = interp.flow.steps[STEP[kind]]
    return replace(state, step=step.name), interp.listen(step).expect


def outcome(interp: Interpreter, kind: str, text: str):
    """Where the flow went (menu: "main" again for repeat), the six digits (number), True/False
    (yes/no); None: not taken."""
    state, _ = listening(interp, kind)
    before = len(state.path)
    state, _actions = interp.handle(state, Heard(text))
    if kind == "menu":
        entered = state.path[before:]
        if entered:
            return entered[0]
        if state.confirming:
            return "did-you-mean"       # a question back: not right at once
        return None if state.no_match_count else state.step   # no match / "repeat" stays at main
    value = state.slots.get("order_id" if kind == "number" else "ok")
    value = getattr(value, "value", value)
    if kind == "number":
        return None if value is None else "".join(ZH_DIGITS[int(c)] for c in str(value) if c.isdigit())
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", choices=VOICES, default="espeak", help="the caller voice (default espeak)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    interp = interpreter()
    try:
        voice = caller_voice(args.voice)
    except RuntimeError as exc:   # the optional voice is not installed: say what to do
        print(f"bench_asr_zh: {exc}", file=sys.stderr)
        return 2
    asr = WhisperAsr(installed_base_model(), language="zh", cpu_threads=2, instances=1)
    rows = []
    for kind, text, want in SET:
        t0, w0 = time.process_time(), time.perf_counter()
        audio = resample(render([("pause", 300), ("say", text), ("pause", 300)], voice), LINE_RATE_HZ, 16000)
        synth_ms = round((time.process_time() - t0) * 1000)
        synth_wall_ms = round((time.perf_counter() - w0) * 1000)
        phrases = listening(interp, kind)[1]
        row = {"kind": kind, "ref": text, "want": want, "audio_s": round(len(audio) / 16000, 2),
               "synth_cpu_ms": synth_ms, "synth_wall_ms": synth_wall_ms}
        for mode, hints in (("hints", phrases), ("no hints", ())):
            t0 = time.process_time()
            session = asr.session(tuple(hints))
            session.feed(audio)
            hyp = session.finish().text
            row[mode] = {"hyp": hyp, "cpu_ms": round((time.process_time() - t0) * 1000),
                         "errors": Levenshtein.distance(norm(text), norm(hyp)),
                         "right": outcome(interp, kind, hyp) == want}
        row["text_right"] = outcome(interp, kind, text) == want
        rows.append(row)
        print(f"{kind:6} {text:10} hints={row['hints']['hyp']!r:16} {row['hints']['right']!s:5} "
              f"free={row['no hints']['hyp']!r:16} {row['no hints']['right']}", flush=True)
    chars = sum(len(norm(r["ref"])) for r in rows)
    summary = {}
    for mode in ("hints", "no hints"):
        per = {k: [r for r in rows if r["kind"] == k] for k in ("menu", "number", "yesno")}
        summary[mode] = {
            "cer": round(sum(r[mode]["errors"] for r in rows) / chars, 3),
            "intent_right": {k: f"{sum(r[mode]['right'] for r in v)}/{len(v)}" for k, v in per.items()},
            "all_right": round(sum(r[mode]["right"] for r in rows) / len(rows), 3),
            "cpu_ms_per_turn_p50": float(np.median([r[mode]["cpu_ms"] for r in rows])),
            "cpu_ms_per_turn_mean": round(float(np.mean([r[mode]["cpu_ms"] for r in rows]))),
        }
        print(mode, summary[mode])
    text_right = sum(r["text_right"] for r in rows)
    print(f"reference text through the same flow: {text_right}/{len(rows)} right")
    synth_ms, synth_wall = [r["synth_cpu_ms"] for r in rows], [r["synth_wall_ms"] for r in rows]
    print(f"voice {voice.name}: synthesis per turn p50 {np.median(synth_ms):.0f} ms CPU (espeak-ng's child process "
          f"not counted), {np.median(synth_wall):.0f} ms wall")
    if args.json:
        out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_info(),
               "voice": voice.name, "synth_cpu_ms_p50": float(np.median(synth_ms)),
               "set": len(rows), "summary": summary, "text_right": text_right, "rows": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
