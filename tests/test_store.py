"""Hot reload: a changed flow is swapped in for new calls, a broken one is refused."""

import os
import textwrap

from ivr.flow.store import FlowStore

GOOD = """
start: a
steps:
  a:
    say: "Version VERSION."
    hangup: true
"""


def write(path, text, bump=1):
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))   # mtime moves even within 1 s


def test_changed_flow_is_swapped_in_and_old_object_is_untouched(tmp_path):
    path = tmp_path / "f.yaml"
    write(path, GOOD.replace('VERSION', '1'))
    prepared = []
    store = FlowStore(on_reload=prepared.append)
    first = store.add("default", path)
    assert store.poll() == []                      # nothing changed
    write(path, GOOD.replace('VERSION', '2'), bump=2)
    assert store.poll() == ["default"]
    second = store.get("default")
    assert second is not first and second.steps["a"].say[0].text == "Version 2."
    assert first.steps["a"].say[0].text == "Version 1."   # a call in progress keeps its version
    assert prepared == [second] and store.status()["default"]["version"] == 2


def test_broken_flow_is_refused_and_last_good_keeps_serving(tmp_path, caplog):
    path = tmp_path / "f.yaml"
    write(path, GOOD.replace('VERSION', '1'))
    store = FlowStore()
    good = store.add("default", path)
    write(path, "start: a\nsteps:\n  a: {say: hi, next: nowhere}\n", bump=2)
    assert store.poll() == []
    assert store.get("default") is good
    refused = store.status()["default"]["refused"]
    assert refused and "unknown step 'nowhere'" in refused[0] and f"{path}:3:" in refused[0]
    assert "not reloaded" in caplog.text
    write(path, GOOD.replace('VERSION', '3'), bump=3)           # fixed: swapped in, errors cleared
    assert store.poll() == ["default"] and store.status()["default"]["refused"] == []


def test_a_changed_subflow_or_faq_file_reloads_the_flow(tmp_path):
    (tmp_path / "sub.yaml").write_text("start: s\nsteps:\n  s: {return: true}\n", encoding="utf-8")
    path = tmp_path / "f.yaml"
    write(path, """
        subflows: {sub: sub.yaml}
        start: a
        steps:
          a: {run: sub, next: b}
          b: {say: done, hangup: true}
        """)
    store = FlowStore()
    store.add("default", path)
    write(tmp_path / "sub.yaml", "start: s\nsteps:\n  s: {say: again, return: true}\n", bump=2)
    assert store.poll() == ["default"]
    assert store.get("default").steps["sub/s"].say[0].text == "again"
