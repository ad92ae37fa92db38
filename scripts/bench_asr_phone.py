"""WER of `ivr transcribe` on real 8 kHz telephone recordings: Debian's asterisk-core-sounds-en-wav.

    .venv/bin/python scripts/bench_asr_phone.py [--model tiny|base|both] [--limit N] [--json PATH]

The corpus is every prompt of /usr/share/asterisk/sounds/en_US_f_Allison (the voice of the
Asterisk prompts, recorded for telephone playback) whose transcript in
/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz is speech (entries in [brackets]
are tones or silence and are skipped). Two measures per engine:
  corpus: each file on its own, through ivr.asr.transcribe (what `ivr transcribe` runs);
  joined: the first 40 prompts (file-name order) joined by 1.2 s of silence in one recording,
          transcribed in one go; WER over the concatenated text.
WER after normalisation: lower case, punctuation dropped, numerals as English words
("20" -> "twenty", "1st" -> "first"), "*" star, "#" pound, hyphens as spaces, common
contractions expanded on both sides ("that's" == "that is"); notes in the transcripts that
are not speech ("(9 seconds of silence)", "[beep]") are dropped, and files left with no words.
"""

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from benchlib import machine_info
from rapidfuzz.distance import Levenshtein

from ivr.asr.bundled import installed_base_model
from ivr.asr.transcribe import transcribe_samples
from ivr.asr.whisper import WhisperAsr, bundled_model_path
from ivr.audio.wavio import read_audio

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
JOIN_GAP_S = 1.2
JOINED_COUNT = 40
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
CONTRACTIONS = {"i'm": "i am", "that's": "that is", "it's": "it is", "you're": "you are", "we're": "we are",
                "they're": "they are", "don't": "do not", "can't": "cannot", "won't": "will not", "isn't": "is not",
                "you've": "you have", "i've": "i have", "we've": "we have", "you'll": "you will", "we'll": "we will",
                "i'll": "i will", "there's": "there is", "let's": "let us", "didn't": "did not", "doesn't": "does not",
                "what's": "what is", "here's": "here is", "you'd": "you would", "i'd": "i would"}
ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
       "twelve": "twelfth"}


def corpus() -> list[tuple[Path, str]]:
    """(wav, transcript) for every spoken prompt that exists as a file."""
    items = []
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    for line in lines:
        name, sep, text = line.partition(":")
        text = text.strip()
        if not sep or line.startswith(";") or not text or re.fullmatch(r"\[.*\]\.?", text):
            continue
        wav = SOUNDS / f"{name.strip()}.wav"
        spoken = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text).strip()   # [tones], (notes) are not said
        if wav.is_file() and spoken:
            items.append((wav, spoken))
    return items


def words_of(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + words_of(n % 100))
    if n < 1_000_000:
        return words_of(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + words_of(n % 1000))
    return " ".join(ONES[int(d)] for d in str(n))


def ordinal(n: int) -> str:
    *head, last = words_of(n).split()
    last = ORD.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join([*head, last])


def normalize(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: " " + ordinal(int(m[1])) + " ", text)
    text = re.sub(r"\d+", lambda m: " " + words_of(int(m[0])) + " ", text)
    text = text.replace("*", " star ").replace("#", " pound ").replace("&", " and ").replace("%", " percent ")
    text = re.sub(r"[a-z]+'[a-z]+", lambda m: CONTRACTIONS.get(m[0], m[0]), text)
    text = text.replace("'", "")
    text = re.sub(r"[^a-z\s]", " ", text)
    return text.split()


def wer(pairs: list[tuple[str, str]]) -> tuple[float, int, int]:
    errors = words = 0
    for ref, hyp in pairs:
        r, h = normalize(ref), normalize(hyp)
        errors += Levenshtein.distance(r, h)
        words += len(r)
    return errors / max(1, words), errors, words


def transcribe(asr, samples: np.ndarray) -> str:
    return " ".join(text for _s, _e, text in transcribe_samples(asr, samples))


def measure(asr, items: list[tuple[Path, str]]) -> dict:
    pairs, worst, every = [], [], []
    audio_s = cpu_s = 0.0
    for wav, ref in items:
        samples = read_audio(wav)
        t0 = time.process_time()
        hyp = transcribe(asr, samples)
        cpu_s += time.process_time() - t0
        audio_s += len(samples) / 16000
        pairs.append((ref, hyp))
        every.append({"file": wav.stem, "ref": ref, "hyp": hyp})
        e = Levenshtein.distance(normalize(ref), normalize(hyp))
        if e:
            worst.append((e, wav.stem, ref, hyp))
    rate, errors, words = wer(pairs)
    joined_items = items[:JOINED_COUNT]
    gap = np.zeros(int(16000 * JOIN_GAP_S), np.int16)
    joined = np.concatenate([x for wav, _ in joined_items for x in (read_audio(wav), gap)])
    joined_rate, _, joined_words = wer([(" ".join(r for _, r in joined_items), transcribe(asr, joined))])
    worst.sort(reverse=True)
    return {"files": len(items), "words": words, "errors": errors, "wer": round(rate, 4),
            "joined_wer": round(joined_rate, 4), "joined_words": joined_words,
            "audio_s": round(audio_s, 1), "cpu_s": round(cpu_s, 1), "cpu_rtf": round(cpu_s / audio_s, 3),
            "worst": [{"file": f, "errors": e, "ref": r, "hyp": h} for e, f, r, h in worst[:15]], "every": every}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["tiny", "base", "both"], default="both")
    ap.add_argument("--limit", type=int, help="only the first N prompts (a quick look, not a result)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    if not TRANSCRIPTS.is_file():
        print("asterisk-core-sounds-en-wav is not installed: run scripts/setup.sh", file=sys.stderr)
        return 2
    items = corpus()[: args.limit]
    models = {"tiny": ("whisper tiny.en", bundled_model_path), "base": ("whisper base", installed_base_model)}
    results = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "engines": {}}
    for key in (["tiny", "base"] if args.model == "both" else [args.model]):
        label, where = models[key]
        asr = WhisperAsr(where(), language="en", cpu_threads=2, instances=1)
        r = measure(asr, items)
        results["engines"][label] = r
        print(f"{label}: corpus WER {r['wer']:.1%} ({r['errors']}/{r['words']} words, {r['files']} files), "
              f"40 joined by {JOIN_GAP_S} s: {r['joined_wer']:.1%}, CPU {r['cpu_rtf']:.3f} x audio", flush=True)
        for w in r["worst"][:8]:
            print(f"    {w['file']}: {w['ref']!r} -> {w['hyp']!r}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
