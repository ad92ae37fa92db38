"""The endpointer on real synthesized speech, clocked in 20 ms frames."""

import numpy as np
import pytest

from ivr.audio.frames import FRAME_MS, split_frames
from ivr.audio.vad import Endpointer, EndReason, VadConfig, utterances


def run(endpointer, samples):
    events = []
    for i, frame in enumerate(split_frames(samples)):
        step = endpointer.process(frame)
        if step.started:
            events.append(("start", i, len(step.audio)))
        if step.ended:
            events.append(("end", i, step.ended))
    return events


@pytest.fixture(scope="module")
def hello(line_audio):
    return line_audio([("pause", 1000), ("say", "where is my order"), ("pause", 1500)])


def test_speech_start_and_end_after_endpoint_silence(hello):
    ep = Endpointer(VadConfig(endpoint_silence_ms=600))
    events = run(ep, hello)
    assert [e[0] for e in events] == ["start", "end"]
    start, end = events[0][1], events[1][1]
    assert 45 <= start <= 60                      # speech begins after the 1 s pause
    assert events[1][2] is EndReason.SILENCE
    # The end comes exactly 600 ms of silence after the last voiced frame.
    assert (end - ep.last_voiced_frame) * FRAME_MS == 600
    assert ep.speech_start_frame <= start


def test_preroll_keeps_the_onset(hello):
    ep = Endpointer(VadConfig(preroll_ms=300, start_ms=80))
    events = run(ep, hello)
    assert events[0][2] == 15                     # 300 ms of frames handed over at the start


def test_short_burst_is_noise_not_a_turn(hello):
    voiced = np.flatnonzero(np.abs(hello) > 2000)
    snippet = hello[voiced[0] : voiced[0] + 16000 * 140 // 1000]          # 140 ms of speech
    audio = np.concatenate([np.zeros(8000, np.int16), snippet, np.zeros(16000, np.int16)])
    # webrtcvad's own hangover stretches voiced frames past the speech: allow for it.
    events = run(Endpointer(VadConfig(min_speech_ms=400, start_ms=80)), audio)
    assert [e[0] for e in events] == ["start", "end"]
    assert events[1][2] is EndReason.NOISE
    events = run(Endpointer(VadConfig(min_speech_ms=100, start_ms=80)), audio)
    assert events[1][2] is EndReason.SILENCE


def test_max_utterance_length(line_audio):
    long_speech = line_audio([("say", "one two three four five six seven eight nine ten eleven twelve")])
    ep = Endpointer(VadConfig(max_utterance_ms=1000))
    events = run(ep, long_speech)
    assert ("end", events[1][1], EndReason.MAX_LENGTH) == events[1]


def test_force_end_and_trailing_silence(hello):
    ep = Endpointer(VadConfig(endpoint_silence_ms=600, early_silence_ms=200))
    for frame in split_frames(hello):
        ep.process(frame)
        if ep.in_speech and ep.trailing_silence_ms == 200:
            assert ep.force_end() is EndReason.EARLY_MATCH
            break
    assert not ep.in_speech
    assert ep.trailing_silence_ms == 0


def test_utterances_splits_a_recording(line_audio):
    audio = line_audio([("pause", 500), ("say", "main menu"), ("pause", 1200), ("say", "opening hours"),
                        ("pause", 1200)])
    found = list(utterances(audio))
    assert len(found) == 2
    (s1, e1, a1), (s2, e2, a2) = found
    assert 400 <= s1 < e1 < s2 < e2
    assert len(a1) > 0.4 * 16000 and len(a2) > 0.4 * 16000


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        VadConfig(aggressiveness=5)
    with pytest.raises(ValueError):
        VadConfig(early_silence_ms=800, endpoint_silence_ms=600)
