"""Published flow versions (`ivr flows`): immutable numbered copies of every file a flow is built
from, aliases, rollback, diff, canaries; `ivr serve` on an alias that moves mid-run."""

import asyncio
import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.flow import versions
from ivr.flow.store import FlowStore
from ivr.flow.versions_store import DirVersionStore

ROOT = Path(__file__).resolve().parent.parent

FLOW = """
name: hotline
knowledge: faq/answers.yaml
subflows: {check: sub/check.yaml}
start: greet
steps:
  greet:
    say: "GREETING"
    audio: prompts/hello.wav
    next: ask
  ask:
    ask: "What can I do for you?"
    faq: true
    choices:
      done: {say: ["that is all"], dtmf: "1", goto: sub}
  sub: {run: check, next: bye}
  bye: {say: "Goodbye.", hangup: true}
"""
SUB = "start: s\nsteps:\n  s: {say: \"Checking.\", return: true}\n"
FAQ = """
language: en-US
faqs:
  - id: hours
    questions: ["when are you open"]
    answer: "We are open nine to five."
"""


def make_flow(folder: Path, greeting: str = "Hello.") -> Path:
    (folder / "faq").mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "prompts").mkdir(exist_ok=True)
    (folder / "faq" / "answers.yaml").write_text(textwrap.dedent(FAQ), encoding="utf-8")
    (folder / "sub" / "check.yaml").write_text(SUB, encoding="utf-8")
    (folder / "prompts" / "hello.wav").write_bytes(b"RIFF fake wav for the copy only")
    path = folder / "hotline.yaml"
    path.write_text(textwrap.dedent(FLOW).replace("GREETING", greeting), encoding="utf-8")
    return path


def ivr(capsys, *args) -> tuple[int, str, str]:
    code = main(["flows", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_publish_copies_every_file_read_only_and_never_overwrites(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("USER", "alice")
    path, d = make_flow(tmp_path / "src"), str(tmp_path / "flows.d")
    code, out, _ = ivr(capsys, "publish", str(path), "--dir", d, "-m", "first", "--alias", "live")
    assert code == 0 and "published hotline v1" in out and "hotline@live -> v1" in out
    v1 = tmp_path / "flows.d" / "hotline" / "v1"
    files = sorted(p.relative_to(v1 / "files").as_posix() for p in (v1 / "files").rglob("*") if p.is_file())
    assert files == ["faq/answers.yaml", "hotline.yaml", "prompts/hello.wav", "sub/check.yaml"]
    manifest = json.loads((v1 / "manifest.json").read_text())
    assert (manifest["version"], manifest["author"], manifest["message"], manifest["entry"]) == \
        (1, "alice", "first", "hotline.yaml") and len(manifest["hash"]) == 64 and manifest["created"].endswith("Z")
    assert all(not (p.stat().st_mode & 0o222) for p in [v1, *v1.rglob("*")])    # read-only after publish

    code, out, _ = ivr(capsys, "publish", str(path), "--dir", d)                 # nothing changed: no v2
    assert code == 0 and "unchanged since v1" in out and not (v1.parent / "v2").exists()
    (path.parent / "sub" / "check.yaml").write_text(SUB.replace("Checking.", "Checking now."), encoding="utf-8")
    code, out, _ = ivr(capsys, "publish", str(path), "--dir", d, "--author", "bob")   # a subflow changed
    assert code == 0 and "published hotline v2" in out
    assert (v1 / "files" / "sub" / "check.yaml").read_text() == SUB                # v1 is untouched

    store = DirVersionStore(tmp_path / "flows.d")
    with pytest.raises(Exception, match="never overwritten"):                       # a stray v3 folder
        (v1.parent / "v3").mkdir()
        store.add_version("hotline", {"a.yaml": b"x"}, "a.yaml", "x", "")
    os.chmod(v1 / "files" / "hotline.yaml", 0o644)                                  # edited behind our back
    (v1 / "files" / "hotline.yaml").write_text("tampered", encoding="utf-8")
    with pytest.raises(Exception, match="changed or missing since hotline v1"):
        store.flow_path("hotline", 1)


def test_publish_shows_the_flows_warnings(tmp_path, capsys):
    path = make_flow(tmp_path / "src")
    path.write_text(path.read_text().replace("next: bye", 'next: [{if: "slot.pin", goto: bye}, {goto: bye}]'),
                    encoding="utf-8")
    code, out, err = ivr(capsys, "publish", str(path), "--dir", str(tmp_path / "flows.d"))
    assert code == 0 and "published hotline v1" in out and "slot.pin" in err and "hotline.yaml:" in err


def test_a_flow_that_fails_validate_is_refused_with_its_problems(tmp_path, capsys):
    path = make_flow(tmp_path / "src")
    path.write_text(path.read_text().replace("next: bye", "next: byee"), encoding="utf-8")
    code, _, err = ivr(capsys, "publish", str(path), "--dir", str(tmp_path / "flows.d"))
    assert code == 2 and "does not validate" in err and "hotline.yaml:" in err and "byee" in err
    assert "hint: fix it (`ivr validate" in err and not (tmp_path / "flows.d" / "hotline").exists()


def test_list_alias_rollback_diff_canary_and_clear_errors(tmp_path, capsys):
    d = str(tmp_path / "flows.d")
    path = make_flow(tmp_path / "src", "Hello one.")
    assert ivr(capsys, "publish", str(path), "--dir", d, "--alias", "live", "-m", "one")[0] == 0
    make_flow(tmp_path / "src", "Hello two.")
    assert ivr(capsys, "publish", str(path), "--dir", d, "--alias", "live", "-m", "two")[0] == 0

    code, out, _ = ivr(capsys, "diff", "hotline", "1", "v2", "--dir", d)
    assert code == 0 and "--- v1/hotline.yaml" in out and '-    say: "Hello one."' in out \
        and '+    say: "Hello two."' in out and "faq" not in out
    assert ivr(capsys, "alias", "hotline", "staging", "1", "--dir", d)[1].strip() == "hotline@staging -> v1"
    code, out, _ = ivr(capsys, "rollback", "hotline", "--dir", d)
    assert code == 0 and out.strip() == "hotline@live: v2 -> v1"
    code, _, err = ivr(capsys, "rollback", "hotline", "--dir", d)          # nothing before v1
    assert code == 2 and "--to VERSION" in err
    assert ivr(capsys, "rollback", "hotline", "--to", "2", "--dir", d)[1].strip() == "hotline@live: v1 -> v2"
    code, out, _ = ivr(capsys, "canary", "hotline", "--version", "1", "--percent", "10", "--dir", d)
    assert code == 0 and "canary v1 for 10% of calls" in out
    code, out, _ = ivr(capsys, "list", "--dir", d)
    lines = out.splitlines()
    assert lines[0] == "hotline" and "one" in lines[1] and lines[1].endswith("<- staging")
    assert lines[2].endswith("two  <- live") and "canary on live: v1 for 10% of calls" in out
    assert ivr(capsys, "canary", "hotline", "--off", "--dir", d)[0] == 0
    assert "canary" not in ivr(capsys, "list", "hotline", "--dir", d)[1]

    for args, message, hint in [
        (("list", "nosuch"), "no published flow named 'nosuch'", "published: hotline"),
        (("alias", "hotline", "live", "9"), "has no version '9'", "versions: v1, v2"),
        (("rollback", "hotline", "--alias", "beta"), "has no alias 'beta'", "aliases: live, staging"),
        (("diff", "nosuch", "1", "2"), "no published flow named", "ivr flows publish"),
        (("canary", "hotline", "--version", "1", "--callers", "abc"), "bad caller rule", "prefix"),
        (("canary", "hotline", "--version", "1"), "needs --percent or --callers", "--off"),
    ]:
        code, _, err = ivr(capsys, *args, "--dir", d)
        assert code == 2 and message in err and hint in err.split("hint:")[1], (args, err)


def test_canary_split_is_deterministic_per_call_id_and_by_caller(tmp_path):
    canary = versions.Canary(2, percent=20)
    picks = [versions.canary_takes(canary, "hotline", f"call-{i}", "") for i in range(2000)]
    assert picks == [versions.canary_takes(canary, "hotline", f"call-{i}", "") for i in range(2000)]
    assert 0.17 < sum(picks) / len(picks) < 0.23
    by_caller = versions.Canary(2, callers=("+4930", "+15550100..+15550199"))
    assert versions.canary_takes(by_caller, "hotline", "x", "+49 30 1234")
    assert versions.canary_takes(by_caller, "hotline", "x", "+15550150")
    assert not versions.canary_takes(by_caller, "hotline", "x", "+15550200")
    assert not versions.canary_takes(by_caller, "hotline", "x", "+155501501")      # longer: not in the range


def test_flow_store_serves_an_alias_reloads_when_it_moves_and_splits_a_canary(tmp_path):
    store = DirVersionStore(tmp_path / "flows.d")
    path = make_flow(tmp_path / "src", "Hello one.")
    versions.publish(store, path, alias="live")
    make_flow(tmp_path / "src", "Hello two.")
    versions.publish(store, path)
    prepared = []
    flows = FlowStore(on_reload=prepared.append, versions_dir=tmp_path / "flows.d")
    first = flows.add("default", Path("versions:hotline@live"))
    assert flows.version_of(first) == "v1" and flows.poll() == []
    versions.set_alias(store, "hotline", "live", 2)
    assert flows.poll() == ["default"]
    second = flows.get("default")
    assert second.steps["greet"].say[0].text == "Hello two." and flows.version_of(second) == "v2"
    assert first.steps["greet"].say[0].text == "Hello one."       # a call in progress keeps its flow
    assert prepared == [second] and flows.status()["default"]["version"] == "v2"

    versions.set_canary(store, "hotline", "live", versions.Canary(1, callers=("+4930",)))
    assert flows.poll() == ["default"]
    assert flows.version_of(flows.pick("default", "c1", "+49301234")) == "v1"
    assert flows.version_of(flows.pick("default", "c1", "+15550100")) == "v2"
    with pytest.raises(Exception, match="no alias 'beta'"):
        FlowStore(versions_dir=tmp_path / "flows.d").add("x", Path("versions:hotline@beta"))

    v1_flow = tmp_path / "flows.d" / "hotline" / "v1" / "files" / "hotline.yaml"   # tampered after publishing
    os.chmod(v1_flow, 0o644)
    v1_flow.write_text(v1_flow.read_text().replace("Hello one.", "Hacked."), encoding="utf-8")
    versions.set_canary(store, "hotline", "live", None)
    versions.set_alias(store, "hotline", "live", 1)
    serving = flows.get("default")
    assert flows.poll() == [] and flows.get("default") is serving                 # refused, v2 keeps serving
    assert "changed or missing since hotline v1" in flows.status()["default"]["refused"][0]


def test_serve_config_names_an_alias(tmp_path):
    from ivr.errors import UserError
    from ivr.service.config import load_config

    cfg_path = tmp_path / "ivr.yaml"
    cfg_path.write_text("flows: {default: 'versions:hotline', routes: {'4000': 'versions:hotline@staging'},"
                        " versions_dir: published}\n", encoding="utf-8")
    cfg = load_config(cfg_path, env={})
    assert str(cfg.default_flow) == "versions:hotline" and str(cfg.routes["4000"]) == "versions:hotline@staging"
    assert cfg.versions_dir == tmp_path / "published"
    assert versions.parse_ref(cfg.default_flow) == versions.AliasRef("hotline", "live")
    cfg_path.write_text("flows: {default: 'versions:hot line@live'}\n", encoding="utf-8")
    with pytest.raises(UserError, match="bad flow name 'hot line'"):
        load_config(cfg_path, env={})


@pytest.mark.slow
def test_serve_on_an_alias_new_calls_get_the_moved_version_ongoing_ones_keep_theirs(tmp_path, line_audio, capsys):
    from ivr.clients.twilio_ws import run_ws_call
    from ivr.service.config import Listener, ServeConfig
    from ivr.service.service import Service

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "flows" / "demo.yaml", src / "demo.yaml")
    d = str(tmp_path / "flows.d")
    assert main(["flows", "publish", str(src / "demo.yaml"), "--dir", d, "--alias", "live"]) == 0
    text = (src / "demo.yaml").read_text().replace("Thanks for calling ACME.", "Welcome to ACME, version two.")
    (src / "demo.yaml").write_text(text, encoding="utf-8")
    assert main(["flows", "publish", str(src / "demo.yaml"), "--dir", d]) == 0
    cfg = ServeConfig(listeners={"ws": Listener("127.0.0.1", 0)}, default_flow=Path("versions:acme-demo@live"),
                      versions_dir=Path(d), asr="whisper", max_calls=2, records_dir=tmp_path / "records",
                      reload=True, shutdown_grace_ms=2000)

    async def go():
        service = Service(cfg, {})
        bound = await service.start()
        host, port = bound["ws"]
        url = f"ws://{host}:{port}/media"
        try:
            first = asyncio.create_task(run_ws_call(url, line_audio([("pause", 9000)]), tail_ms=200))
            await asyncio.sleep(2.5)                              # the first call is under way on v1
            assert main(["flows", "alias", "acme-demo", "live", "2", "--dir", d]) == 0
            for _ in range(100):                                  # the service's watch sees the alias move
                if service.flows.status()["default"]["version"] == "v2":
                    break
                await asyncio.sleep(0.1)
            await run_ws_call(url, line_audio([("pause", 3000)]), tail_ms=200)
            await first
        finally:
            await service.stop(grace_ms=1000)

    asyncio.run(go())
    recs = sorted((json.loads(p.read_text()) for p in (tmp_path / "records").rglob("*.json")),
                  key=lambda r: r["call"]["started_at"])
    assert [r["call"]["flow_version"] for r in recs] == ["v1", "v2"]
    assert [r["flow"] for r in recs] == ["acme-demo", "acme-demo"]
    said = [" ".join(s for t in r["turns"] for s in t["said"]) for r in recs]
    assert "Thanks for calling ACME." in said[0] and "version two" not in said[0]
    assert "Welcome to ACME, version two." in said[1]
