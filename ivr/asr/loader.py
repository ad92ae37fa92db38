"""Load the ASR model a call needs: engine choice per config, `auto` by language."""

import logging
from pathlib import Path

from ivr.asr.base import AsrModel
from ivr.asr.registry import resolve_model

log = logging.getLogger("ivr.asr")


def load_asr(engine: str, language: str, models_dir: Path, model_path: str | None = None,
             cpu_threads: int = 2) -> AsrModel:
    """`engine` is auto | vosk | whisper. Raises UserError saying how to get a missing model."""
    info = resolve_model(engine, language, models_dir, model_path)
    log.info("ASR: %s model %s (%s) from %s", info.engine, info.name, info.language, info.source)
    if info.engine == "vosk":
        from ivr.asr.vosk import VoskAsr

        return VoskAsr(info.path, info.language, name=info.name)
    from ivr.asr.whisper import WhisperAsr

    return WhisperAsr(info.path, language=info.language, cpu_threads=cpu_threads)
