"""baresip phones for the queue and agent tests: a phone that plays a rendered script as its
microphone and records what it hears, and whisper's reading of such a recording."""

import numpy as np
import soundfile as sf

from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from tests.test_sip_baresip import Baresip, free_port, write_config


def phone(tmp_path, name: str, script, piper, account: str):
    """(Baresip, its SIP port, the folder its recordings go to); `script` as ivr.callgen.render takes it."""
    folder = tmp_path / name
    records = folder / "records"
    records.mkdir(parents=True)
    wav = folder / "say.wav"
    sf.write(str(wav), render(script, piper), LINE_RATE_HZ, subtype="PCM_16")
    sip_port, ctrl_port, rtp_base = free_port(2), free_port(), free_port(41)
    write_config(folder, wav, records, sip_port, ctrl_port, rtp_base, account=account)
    return Baresip(folder, ctrl_port), sip_port, records


def heard(records, asr) -> tuple[str, np.ndarray]:
    """(the words, the 16 kHz audio) of the first call the phone recorded."""
    files = sorted(records.glob("*-dec.wav"))
    assert files, f"no recording in {records}"
    audio, rate = sf.read(str(files[0]), dtype="int16")
    audio = resample(audio, rate, 16000)
    # in 8 s windows (4 s apart): over half a minute of speech, tones and music, whisper skips passages
    step = 4 * 16000
    texts = [asr.transcribe(audio[i:i + 2 * step]).text.lower() for i in range(0, max(1, len(audio) - step), step)]
    return " ".join(texts), audio
