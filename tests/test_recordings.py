"""Stereo call recordings (ivr/recordings.py) and the transcripts rule of the JSON records.

A replayed call keys an order number (an ordinary step) and then a card number at a
`sensitive: true` step that reads it back: the WAV holds the caller left and the machine right,
sample for sample as the transport carried them, except while the card is asked, keyed and
read back, where both channels are silence.
"""

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

from ivr.audio.frames import FRAME_SAMPLES, INTERNAL_RATE_HZ
from ivr.call import Call
from ivr.callevents import KeysPressed, PromptPlayed
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow
from ivr.recordings import BATCH_FRAMES, PRIVATE_TAIL_FRAMES, Recorder, RecordingPolicy
from ivr.records import JsonRecords
from ivr.store.store import TranscriptPolicy
from ivr.transports.wavfile import WavReplayTransport

CARD = "4111111111111111"
FLOW = """\
name: rec-card
language: en-US
voice: piper
start: order
steps:
  order:
    ask: "Please key your three digit order number."
    collect: {slot: order, type: digits, length: 3}
    next: card
  card:
    ask: "Please key in your card number, then press pound."
    collect: {slot: card, type: digits, min_length: 13, max_length: 19, sensitive: true}
    confirm: "That's {{ slots.card | digits }}. Is that right?"
    next: bye
  bye:
    say: "Thank you. Goodbye."
    hangup: true
"""


def energy(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def span(wav: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    return wav[start_ms * INTERNAL_RATE_HZ // 1000:end_ms * INTERNAL_RATE_HZ // 1000]


def replay(tmp_path, whisper_asr, prompt_cache, line_audio):
    flow_path = tmp_path / "rec.yaml"
    flow_path.write_text(FLOW, encoding="utf-8")
    flow = load_flow(flow_path)
    audio = line_audio([("pause", 1500), ("keys", "123"), ("pause", 2500), ("keys", CARD + "#"), ("pause", 2000),
                        ("keys", "1"), ("pause", 5000)])
    recorder = Recorder(tmp_path / "records", RecordingPolicy(flows={"rec-card": True})).start()
    events: list = []
    flags: list[bool] = []
    call_id = f"rec-{uuid.uuid4().hex[:8]}"
    tap = recorder.open(call_id, flow.name)

    def spy(inbound, outbound, private):   # what the call loop hands the tap, kept to check against
        flags.append(private)
        tap(inbound, outbound, private)

    async def go():
        transport = WavReplayTransport(audio)
        call = Call(call_id, Interpreter(flow, None), whisper_asr, prompt_cache, transport,
                    emit=events.append, tap=spy)
        transport.keep_going = lambda: call.busy
        trace = await call.run()
        tap.close()
        return trace, transport

    trace, transport = asyncio.run(go())
    recorder.close()
    return trace, transport, events, flags, tap


def test_stereo_recording_silences_the_sensitive_step(tmp_path, whisper_asr, prompt_cache, line_audio):
    trace, transport, events, flags, tap = replay(tmp_path, whisper_asr, prompt_cache, line_audio)
    assert trace.path[-3:] == ["order", "card", "bye"], trace.path
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert tap.path == tmp_path / "records" / day / f"{tap.call_id}.wav"
    info = sf.info(str(tap.path))
    assert (info.channels, info.samplerate, info.subtype) == (2, INTERNAL_RATE_HZ, "PCM_16")
    wav, _ = sf.read(str(tap.path), dtype="int16")
    assert len(wav) == len(flags) * FRAME_SAMPLES
    caller, machine = wav[:, 0], wav[:, 1]

    # Outside the sensitive step: exactly what the line carried, both ways.
    sent = np.concatenate(transport.outbound_frames)
    heard = np.concatenate(transport.inbound_frames)
    silenced = [any(flags[max(0, i - PRIVATE_TAIL_FRAMES):i + 1]) for i in range(len(flags))]
    private = np.repeat(np.array(silenced), FRAME_SAMPLES)
    assert private.any() and not private.all()
    assert np.array_equal(caller[~private], heard[:len(caller)][~private])
    assert np.array_equal(machine[~private], sent[:len(machine)][~private])
    assert not wav[private].any()   # and nothing at all inside it

    keys = [e for e in events if isinstance(e, KeysPressed)]
    order_key = next(e for e in keys if e.step == "order")
    card_keys = [e for e in keys if e.step == "card"]
    assert len(card_keys) >= 16
    # The order number's tones are in the recording; the card's are on the line but not recorded.
    assert energy(span(caller, order_key.t_ms - 100, order_key.t_ms)) > 500
    for key in card_keys:
        assert energy(span(heard, key.t_ms - 100, key.t_ms)) > 500      # the caller did key it
        assert energy(span(caller, key.t_ms - 100, key.t_ms)) == 0.0    # the recording holds silence
    prompts = [e for e in events if isinstance(e, PromptPlayed)]
    readback = next(p for p in prompts if p.text.startswith("That's"))
    goodbye = next(p for p in prompts if p.text == "Thank you. Goodbye.")
    assert "1111" in readback.text and CARD not in readback.text
    readback_end_ms = min(readback.t_ms + readback.duration_ms, goodbye.t_ms)   # "1" cuts it short
    assert energy(span(sent, readback.t_ms, readback_end_ms)) > 300   # read back on the line
    assert energy(span(machine, readback.t_ms, readback_end_ms)) == 0.0
    assert energy(span(machine, goodbye.t_ms, goodbye.t_ms + goodbye.duration_ms)) > 300

    # The JSON record names the recording; with transcripts off for the flow it holds no texts.
    records = JsonRecords(tmp_path / "json", TranscriptPolicy(True, {"rec-card": False}))
    kept = JsonRecords(tmp_path / "json-kept", TranscriptPolicy(False, {"rec-card": True}))
    from dataclasses import replace

    for event in events:
        if type(event).__name__ == "CallBegan":
            event = replace(event, recording=str(tap.path))
        records(event)
        kept(event)
    (path,) = (tmp_path / "json").rglob("*.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["call"]["recording"] == str(tap.path)
    assert all(t["heard"] == "" and t["said"] == [] for t in record["turns"]), record["turns"]
    assert "order number" not in path.read_text(encoding="utf-8")
    (path,) = (tmp_path / "json-kept").rglob("*.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    assert any("order number" in s for t in record["turns"] for s in t["said"])
    assert [t["heard"] for t in record["turns"] if t["kind"] == "dtmf"][:2] == ["123", "************1111"]


def test_a_recording_cut_short_is_readable_and_retention_deletes_old_ones(tmp_path):
    recorder = Recorder(tmp_path, RecordingPolicy(default=True), retention_days=30).start()
    assert Recorder(tmp_path).open("x", "any") is None          # consent: off unless switched on
    tap = recorder.open("crash/1", "any", began_at_s=time.time())
    tone = (np.sin(np.arange(FRAME_SAMPLES) / 5) * 8000).astype(np.int16)
    for _ in range(3 * BATCH_FRAMES):
        tap(tone, None, False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:   # no close (the service died): what was handed over is on disk
        if tap.path.exists() and sf.info(str(tap.path)).frames == 3 * BATCH_FRAMES * FRAME_SAMPLES:
            break
        time.sleep(0.05)
    wav, rate = sf.read(str(tap.path), dtype="int16")
    assert rate == INTERNAL_RATE_HZ and len(wav) == 3 * BATCH_FRAMES * FRAME_SAMPLES
    assert np.array_equal(wav[:FRAME_SAMPLES, 0], tone) and not wav[:, 1].any()
    assert tap.path.name == "crash_1.wav"

    old = tmp_path / "2020-01-01" / "old.wav"
    old.parent.mkdir()
    old.write_bytes(tap.path.read_bytes())
    os.utime(old, (time.time() - 40 * 86400,) * 2)
    other = tmp_path / "2020-01-01" / "notes.txt"
    other.write_text("kept")
    os.utime(other, (time.time() - 40 * 86400,) * 2)
    assert recorder.purge() == 1
    assert not old.exists() and other.exists() and tap.path.exists()
    tap.close()
    recorder.close()
    assert recorder.saved == 1


def test_config_switches(tmp_path):
    from ivr.errors import UserError
    from ivr.service.config import load_config

    path = tmp_path / "serve.yaml"
    path.write_text("records: {dir: rec, recordings: {default: false, flows: {support: true}},"
                    " transcripts: {flows: {support: false}}}\n", encoding="utf-8")
    cfg = load_config(path, {})
    assert (cfg.recordings, cfg.recordings_flows) == (False, {"support": True})
    assert (cfg.transcripts, cfg.transcripts_flows) == (True, {"support": False})
    assert load_config(None, {}).recordings is False
    path.write_text("records: {dir: '', recordings: true}\n", encoding="utf-8")
    try:
        load_config(path, {})
        raise AssertionError("records.recordings without records.dir was taken")
    except UserError as exc:
        assert "records.dir" in str(exc)
    path.write_text("records: {recordings: yes please}\n", encoding="utf-8")
    try:
        load_config(path, {})
        raise AssertionError("a bad records.recordings was taken")
    except UserError as exc:
        assert "records.recordings" in str(exc)


def test_a_bridge_call_through_the_service_is_recorded(tmp_path, line_audio):
    """`ivr serve` with recordings on for the flow: a Media Streams call on 127.0.0.1 leaves a
    stereo WAV named by its record, with the card's span silent on both channels."""
    from ivr.clients.twilio_ws import run_ws_call
    from ivr.service.config import Listener, ServeConfig
    from ivr.service.service import Service

    flow_path = tmp_path / "rec.yaml"
    flow_path.write_text(FLOW, encoding="utf-8")
    cfg = ServeConfig(listeners={"ws": Listener("127.0.0.1", 0)}, default_flow=flow_path, asr="whisper",
                      max_calls=2, records_dir=tmp_path / "records", database="", reload=False,
                      shutdown_grace_ms=3000, recordings_flows={"rec-card": True})
    audio = line_audio([("pause", 1500), ("keys", "123"), ("pause", 2500), ("keys", CARD + "#"), ("pause", 2000),
                        ("keys", "1"), ("pause", 4000)])

    async def go():
        service = Service(cfg)
        host, port = (await service.start())["ws"]
        try:
            return await run_ws_call(f"ws://{host}:{port}/media", audio, call_sid="CArec", tail_ms=500,
                                     realtime=False)
        finally:
            await service.stop(grace_ms=2000)

    asyncio.run(go())
    (path,) = (tmp_path / "records").rglob("*.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["path"][-3:] == ["order", "card", "bye"], record["path"]
    wav_path = Path(record["call"]["recording"])
    assert wav_path.suffix == ".wav" and wav_path.parent == path.parent
    wav, rate = sf.read(str(wav_path), dtype="int16")
    assert rate == INTERNAL_RATE_HZ and wav.shape[1] == 2 and len(wav) > 8 * rate
    frames = wav[:len(wav) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES, 2)
    silent = ~frames.any(axis=(1, 2))
    runs, run = [], 0
    for quiet in silent:
        run = run + 1 if quiet else 0
        runs.append(run)
    assert max(runs) * 20 >= 4000, max(runs)        # the card step: its prompt, keys and read-back
    assert energy(wav[:, 0]) > 50 and energy(wav[:, 1]) > 300   # the order keys, the prompts
    card_turn = next(t for t in record["turns"] if t["step"] == "card" and t["kind"] == "dtmf")
    assert card_turn["heard"] == "************1111"
