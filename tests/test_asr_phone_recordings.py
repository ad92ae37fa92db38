"""`ivr transcribe`'s path on real 8 kHz telephone prompts (Debian's asterisk-core-sounds-en-wav,
the Allison recordings): long prompts keep their last sentence, short ones are not doubled.
Word error rate on the whole corpus is a benchmark: scripts/bench_asr_phone.py."""

from pathlib import Path

import numpy as np
import pytest

from ivr.asr.transcribe import transcribe_samples
from ivr.audio.wavio import read_audio
from ivr.flow.patterns import normalize

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")

pytestmark = pytest.mark.slow


def heard(asr, *names: str, gap_s: float = 0.0) -> str:
    if not SOUNDS.is_dir():
        pytest.fail("asterisk-core-sounds-en-wav is not installed: run scripts/setup.sh")
    gap = np.zeros(int(16000 * gap_s), np.int16)
    audio = np.concatenate([x for n in names for x in (read_audio(SOUNDS / f"{n}.wav"), gap)])
    return normalize(" ".join(text for _s, _e, text in transcribe_samples(asr, audio)))


def test_a_16_s_prompt_keeps_its_last_sentence(whisper_asr):
    text = heard(whisper_asr, "vm-options")     # "... press 5 to change your password, press star to ..."
    assert "record your unavailable message" in text
    assert "return to the main menu" in text
    assert text.count("return to the main menu") == 1


def test_a_25_s_prompt_is_decoded_whole(whisper_asr):
    text = heard(whisper_asr, "basic-pbx-ivr-main")
    assert text.startswith("thank you for calling")
    assert "for an operator press 0" in text or "for an operator press zero" in text


@pytest.mark.parametrize(("name", "said"), [("vm-messages", "messages"), ("vm-opts", "mailbox options"),
                                            ("vm-prev", "previous message")])
def test_prompts_are_not_doubled(whisper_asr, name, said):
    assert heard(whisper_asr, name).count(said) == 1


def test_prompts_joined_by_silence_come_back_in_order(whisper_asr):
    text = heard(whisper_asr, "vm-messages", "vm-prev", "auth-thankyou", gap_s=1.2)
    assert text.split() == ["messages", "press", "4", "for", "the", "previous", "message", "thank", "you"]
