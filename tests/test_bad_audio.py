"""Bad input as audio, the whole pipeline (VAD, whisper tiny.en, the demo flow): music, noise and hum on the line,
another language, a Mandarin caller on the English flow, a 35 s monologue. Each has a defined outcome (a no-match
re-prompt, then the agent), never a choice taken; the trace says what was heard, the candidates, and what the
recognizer dropped as no speech. (tests/test_understand.py checks the same sentences as text.)"""

import asyncio
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ivr.asr.whisper import not_speech
from ivr.audio.g711 import mulaw_decode, mulaw_encode
from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from ivr.events import DOUBTFUL, VERY_DOUBTFUL, CallStarted, Heard
from ivr.flow.interpreter import Interpreter
from ivr.flow.state import CallState
from ivr.replay import replay_samples
from tests.mandarin import PinyinEspeak
from tests.test_understand import MONOLOGUE

pytestmark = pytest.mark.slow

GREETING_MS = 7500     # the demo's greeting and menu prompt
HOLD_MUSIC = Path("/usr/share/asterisk/moh")   # Debian's asterisk-moh-opsound-wav (scripts/setup.sh)
NO_MATCH = ("Sorry, I didn't catch that.", "You can also press 0 for an agent.")


class Espeak:
    """espeak-ng as a caller voice for ivr.callgen.render."""

    rate_hz = 22050

    def __init__(self, voice: str) -> None:
        self.voice = voice

    def synthesize(self, text: str) -> np.ndarray:
        wav = subprocess.run(["espeak-ng", "-v", self.voice, "-s", "150", "--stdout", text],
                             capture_output=True, check=True).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="int16")
        return resample(audio, rate, self.rate_hz)


def music(seconds: float) -> np.ndarray:
    """Hold music: plucked chords over a bass line, 8 kHz float."""
    t = np.arange(int(LINE_RATE_HZ * 0.5)) / LINE_RATE_HZ
    notes = (261.6, 329.6, 392.0, 523.3, 440.0, 349.2, 293.7, 392.0)
    bar = np.concatenate([sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)) * np.exp(-3 * t) * 0.15
                          + np.sin(np.pi * f * t) * 0.1 for f in notes])
    return np.tile(bar, int(np.ceil(seconds / 4)))[: int(LINE_RATE_HZ * seconds)]


def pink_noise(seconds: float) -> np.ndarray:
    """1/f noise (a noisy line, wind), 8 kHz float."""
    spectrum = np.fft.rfft(np.random.default_rng(5).normal(size=int(LINE_RATE_HZ * seconds)))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum)
    return noise / np.abs(noise).max() * 0.3


def hum(seconds: float) -> np.ndarray:
    """Mains hum with its third harmonic, 8 kHz float."""
    t = np.arange(int(LINE_RATE_HZ * seconds)) / LINE_RATE_HZ
    return 0.2 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)


def mulaw_line(sound: np.ndarray) -> np.ndarray:
    """`sound` (8 kHz float) through a mu-law phone line: 8 kHz int16."""
    return mulaw_decode(mulaw_encode(np.clip(sound * 32767, -32768, 32767).astype(np.int16)))


def on_line(sound: np.ndarray) -> np.ndarray:
    """`sound` (8 kHz float) with 300 ms of silence either side through the line, as 16 kHz samples: one turn."""
    pad = np.zeros(int(LINE_RATE_HZ * 0.3), np.float32)
    return resample(mulaw_line(np.concatenate([pad, sound, pad])), LINE_RATE_HZ, 16000)


def caller(sound: np.ndarray, piper) -> np.ndarray:
    """`sound` (8 kHz float) after the greeting, through a mu-law line, then silence: 16 kHz samples."""
    before, after = render([("pause", GREETING_MS)], piper), render([("pause", 9000)], piper, seed=8)
    return resample(np.concatenate([before, mulaw_line(sound), after]), LINE_RATE_HZ, 16000)


def spoken(voice, text: str) -> np.ndarray:
    """`text` said by `voice` on the line, as 8 kHz float."""
    return render([("say", text)], voice, noise_dbfs=None).astype(np.float32) / 32767


def call(audio: np.ndarray, demo_flow, whisper_asr, prompt_cache) -> dict:
    result = asyncio.run(replay_samples(audio, demo_flow, whisper_asr, prompt_cache, call_id="bad-audio"))
    return result.trace.to_dict()


def speech_turns(trace: dict) -> list[dict]:
    return [t for t in trace["turns"] if t["kind"] == "speech"]


@pytest.mark.parametrize("sound", [lambda: music(12), lambda: pink_noise(4), lambda: hum(4)],
                         ids=["hold-music-12s", "pink-noise-4s", "hum-4s"])
def test_music_and_noise_take_nothing_and_hang_up_on_nobody(sound, demo_flow, whisper_asr, prompt_cache, piper):
    trace = call(caller(sound(), piper), demo_flow, whisper_asr, prompt_cache)
    turns = speech_turns(trace)
    assert turns and trace["path"] == ["greet", "main"] and trace["outcome"]["kind"] == "caller_hangup"
    for turn in turns:
        assert turn["match"] is None and turn["said"][0] in NO_MATCH, turn
        # whisper's stock words for music and noise ("Thank you." is a goodbye) are dropped, and the trace says so
        assert not turn["heard"] or all(c["score"] < 0.6 for c in turn["candidates"]), turn


def real_hold_music(name: str, start_s: float, seconds: float) -> np.ndarray:
    """A stretch of one of Debian's music-on-hold tracks (8 kHz), as 8 kHz float."""
    path = HOLD_MUSIC / f"{name}.wav"
    if not path.is_file():
        pytest.fail(f"{path} is missing: install Debian's asterisk-moh-opsound-wav (scripts/setup.sh)")
    audio, rate = sf.read(path, dtype="int16", always_2d=True)
    audio = resample(audio[:, 0], rate, LINE_RATE_HZ)
    return audio[int(start_s * LINE_RATE_HZ):int((start_s + seconds) * LINE_RATE_HZ)].astype(np.float32) / 32767


def test_real_hold_music_is_not_a_goodbye(demo_flow, whisper_asr, prompt_cache, piper):
    # tiny.en hears stretches of this real hold-music track as "thank you" (goodbye: the caller was hung up on) or
    # "you" (scripts/bench_bad_audio.py)
    trace = call(caller(real_hold_music("manolo_camp-morning_coffee", 40, 8), piper), demo_flow, whisper_asr,
                 prompt_cache)
    turns = speech_turns(trace)
    assert turns and trace["path"] == ["greet", "main"], trace["path"]
    assert all(t["match"] is None and t["heard"] == "" for t in turns), turns
    assert "whisper finds likely to hold no speech" in turns[0]["timing"]["asr_dropped"]


def test_the_trace_says_what_the_recognizer_dropped_as_no_speech(demo_flow, whisper_asr, prompt_cache, piper):
    turn = speech_turns(call(caller(music(12), piper), demo_flow, whisper_asr, prompt_cache))[0]
    assert turn["heard"] == "" and "no speech" in turn["timing"]["asr_dropped"], turn


@pytest.mark.parametrize("voice,text", [
    ("fr", "Je voudrais parler à quelqu'un de ma facture, s'il vous plaît."),
    ("de", "Ich möchte bitte meine Rechnung sehen und mit jemandem sprechen."),
    ("zh", "我想查一下我的订单"),
], ids=["french", "german", "mandarin-on-the-english-flow"])
def test_another_language_takes_nothing(voice, text, demo_flow, whisper_asr, prompt_cache, piper):
    sound = spoken(PinyinEspeak() if voice == "zh" else Espeak(voice), text)
    trace = call(caller(sound, piper), demo_flow, whisper_asr, prompt_cache)
    turns = speech_turns(trace)
    assert turns and trace["path"] == ["greet", "main"]
    for turn in turns:
        assert turn["match"] is None and (turn["candidates"] or not turn["heard"]), turn


def test_a_long_monologue_takes_nothing_and_ends_with_the_agent(demo_flow, whisper_asr, prompt_cache, piper):
    # 35 s without a pause long enough to end the turn: cut at the longest turn (15 s), every part a no-match,
    # although it says "three hours" ("hours" is a phrase of the menu), then the step's fallback
    trace = call(caller(spoken(piper, MONOLOGUE), piper), demo_flow, whisper_asr, prompt_cache)
    turns = speech_turns(trace)
    assert len(turns) >= 3 and any("hours" in t["heard"] for t in turns)
    assert all(t["match"] is None for t in turns), turns
    assert trace["path"] == ["greet", "main", "to_agent"] and trace["outcome"]["kind"] == "transfer"


@pytest.mark.parametrize("text,no_speech,dropped", [
    ("Thank you.", 0.85, True), ("you you you", 0.4, True), ("Bye bye.", 0.3, True),
    ("thank you", 0.02, False),       # a caller's thanks: whisper is sure it is speech
    ("agent", 0.9, False),            # not one of the stock words: kept (the flow decides)
    ("thank you for calling me back", 0.5, False),
    ("谢谢观看", 0.3, True), ("谢谢", 0.5, False),
])
def test_stock_words_are_dropped_only_where_whisper_doubts_there_was_speech(text, no_speech, dropped):
    language = "zh" if not text.isascii() else "en"
    assert bool(not_speech(text, no_speech, -0.5, language)) is dropped
    assert not_speech(text, 0.9, -1.5, language) == "no speech"     # faster-whisper's own test comes first


@pytest.mark.parametrize("text,doubt,taken,offered", [
    ("you can do my package please go play", DOUBTFUL, None, "track"),   # French, as tiny.en writes it
    ("where is my package", 0, "track", None),
    ("goodbye", DOUBTFUL, "goodbye", None),            # a whole short answer has few tokens to be sure of
    ("that's all", VERY_DOUBTFUL, None, "goodbye"),    # Romanian heard as "that's all" (confidence 0.03)
])
def test_words_the_recognizer_doubts_offer_an_answer_instead_of_taking_it(demo_flow, text, doubt, taken, offered):
    interp = Interpreter(demo_flow)
    state, _ = interp.handle(CallState(), CallStarted())
    after, _ = interp.handle(state, Heard(text, 0.2, doubt=doubt))
    assert after.last.choice == taken
    assert (after.confirming.name if after.confirming else None) == offered
    if offered:
        assert "the recognizer doubts the words" in after.last.candidates[0]["signal"]


MANDARIN_PROMPT = "以下是普通话的句子。人工，营业时间，退货，订单状态，我的订单在哪里，查询订单，查订单，"


@pytest.mark.parametrize("text,no_speech,dropped", [
    ("询订单状态", 0.45, True),       # whisper base over music: pieces of the prompt run together
    ("询订单状态", 0.1, False),       # ... but whisper is sure it heard speech
    ("查订单", 0.3, True),
    ("不对", 0.4, False),          # a two-character answer: too short to tell
    ("我想查一下订单", 0.45, False),   # words of the caller's own
])
def test_mandarin_pieces_of_the_prompt_are_dropped_where_whisper_doubts_there_was_speech(text, no_speech, dropped):
    assert bool(not_speech(text, no_speech, -0.6, "zh", MANDARIN_PROMPT)) is dropped


def test_real_hold_music_at_a_mandarin_menu_is_no_request(whisper_base):
    """whisper base wrote 36 of 42 stretches of real hold music as "询订单状态" at the retail menu: track taken."""
    from ivr.events import Fetched, Listen
    from ivr.flow.http import HttpResult
    from ivr.flow.loader import load_flow

    interp = Interpreter(load_flow(Path(__file__).resolve().parent.parent / "flows" / "retail" / "retail.yaml",
                                   language="zh-CN"), {"ORDERS_API": "http://127.0.0.1:9"}, "zh-CN")
    state, actions = interp.handle(CallState(), CallStarted())
    while state.waiting:   # the caller-ID lookup: answered as failed, the menu still comes
        state, actions = interp.handle(state, Fetched(HttpResult(False, 0, None, "", "connect", 1, 1)))
    expect = next(a for a in actions if isinstance(a, Listen)).expect
    dropped = []
    for name, start, seconds in (("macroform-cold_day", 5, 8), ("macroform-the_simplicity", 40, 8),
                                 ("reno_project-system", 40, 4)):
        heard = whisper_base.transcribe(on_line(real_hold_music(name, start, seconds)), expect)
        after, _ = interp.handle(state, Heard(heard.text, heard.confidence, doubt=heard.doubt))
        assert after.last.choice is None and after.confirming is None, (name, heard.text)
        dropped.append(heard.timing.get("asr_dropped", ""))
    assert any("pieces of the prompt" in why for why in dropped), dropped
