"""Microphone transport: the clear error where no audio device exists (this machine has
PortAudio but no devices), and the audio-thread <-> event-loop bridge driven from a real thread."""

import asyncio
import threading

import numpy as np
import pytest
import sounddevice as sd

from ivr.errors import UserError
from ivr.transports.mic import Duplex, MicTransport


def _has_input_device() -> bool:
    try:
        sd.check_input_settings(channels=1, dtype="int16", samplerate=16000)
        return True
    except (sd.PortAudioError, ValueError):
        return False


@pytest.mark.skipif(_has_input_device(), reason="this machine has an audio input device")
def test_no_input_device_is_a_clear_user_error():
    with pytest.raises(UserError) as err:
        MicTransport()
    text = str(err.value)
    assert text.startswith("no audio input device found (sounddevice: ")
    assert "`ivr chat FLOW`" in text and "`ivr replay` with a WAV" in text


@pytest.mark.skipif(_has_input_device(), reason="this machine has an audio input device")
def test_a_named_device_that_does_not_exist():
    with pytest.raises(UserError, match="no audio input device found"):
        MicTransport(device="no such microphone")


def test_duplex_carries_blocks_from_the_audio_thread_and_plays_what_was_sent():
    """A thread calls the callback as PortAudio would: 20 ms blocks in, frames out."""
    async def main():
        duplex = Duplex(asyncio.get_running_loop())
        sent = [np.full(320, i + 1, np.int16) for i in range(3)]
        duplex.out.extend(sent)
        played: list[np.ndarray] = []

        def audio_thread():
            for i in range(5):
                indata = np.full((320, 1), 100 + i, np.int16)
                outdata = np.full((320, 1), -7, np.int16)
                duplex.callback(indata, outdata, 320, None, None)
                played.append(outdata[:, 0].copy())
            duplex.key("5")
            duplex.end()

        thread = threading.Thread(target=audio_thread)
        thread.start()
        received = []
        while (item := await asyncio.wait_for(duplex.items.get(), 2)) is not None:
            received.append(item)
        thread.join()
        return received, played

    received, played = asyncio.run(main())
    assert [int(block[0]) for block in received[:5]] == [100, 101, 102, 103, 104] and received[5] == "5"
    assert all(len(block) == 320 for block in received[:5])
    assert [int(p[0]) for p in played] == [1, 2, 3, 0, 0]        # then silence, never stale samples


def test_duplex_after_the_loop_closed_does_not_raise():
    loop = asyncio.new_event_loop()
    duplex = Duplex(loop)
    loop.close()
    out = np.ones((320, 1), np.int16)
    duplex.callback(np.zeros((320, 1), np.int16), out, 320, None, None)   # must not raise on the audio thread
    assert not out.any()
