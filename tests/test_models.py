"""Finding models: MICRO_LLM_MODELS, the cache, and a verified download."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from micro_llm import models
from micro_llm.errors import UserError


@pytest.fixture
def mirror(models_dir, tmp_path, monkeypatch):
    """A loopback HTTP server that serves the model files as huggingface lays them out."""
    root = tmp_path / "www"
    (root / "stories260K").mkdir(parents=True)
    for name in ("stories260K.bin", "tok512.bin"):
        (root / "stories260K" / name).write_bytes((models_dir / name).read_bytes())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("MICRO_LLM_MODELS", raising=False)
    monkeypatch.setenv("MICRO_LLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MICRO_LLM_MIRROR", f"http://127.0.0.1:{server.server_port}")
    yield root
    server.shutdown()


def test_first_use_downloads_and_verifies_into_the_cache(mirror, tmp_path, capsys):
    files = models.resolve("stories260K")
    assert files.checkpoint == tmp_path / "cache" / "models" / "stories260K.bin"
    assert hashlib.sha256(files.checkpoint.read_bytes()).hexdigest() == (
        "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696")
    assert "1,056,540/1,056,540 bytes" in capsys.readouterr().err
    assert sorted(p.name for p in files.checkpoint.parent.iterdir()) == [
        "stories260K.bin", "tok512.bin"]


def test_a_download_with_the_wrong_sha256_is_refused_and_not_kept(mirror, tmp_path):
    (mirror / "stories260K" / "tok512.bin").write_bytes(b"not the tokenizer")
    with pytest.raises(UserError, match="not the pinned 037cb335"):
        models.resolve("stories260K")
    cached = tmp_path / "cache" / "models"
    assert sorted(p.name for p in cached.iterdir()) == ["stories260K.bin"]


def test_a_local_file_with_the_wrong_sha256_is_refused(tmp_path, monkeypatch):
    (tmp_path / "stories260K.bin").write_bytes(b"\0" * 100)
    monkeypatch.setenv("MICRO_LLM_MODELS", str(tmp_path))
    monkeypatch.setenv("MICRO_LLM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="from MICRO_LLM_MODELS.*not the pinned"):
        models.resolve("stories260K")


def test_offline_with_nothing_found_names_micro_llm_models(tmp_path, monkeypatch):
    monkeypatch.delenv("MICRO_LLM_MODELS", raising=False)
    monkeypatch.setenv("MICRO_LLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MICRO_LLM_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(UserError) as e:
        models.resolve("stories260K")
    assert "MICRO_LLM_MODELS (unset)" in str(e.value)
    assert "set MICRO_LLM_MODELS to its folder" in str(e.value)
    assert not (tmp_path / "cache" / "models").exists() or not any(
        (tmp_path / "cache" / "models").iterdir())


def test_registry_pins_stories260K(models_dir):
    entry = models.known_models()["stories260K"]
    for part, name in (("checkpoint", "stories260K.bin"), ("tokenizer", "tok512.bin")):
        data = Path(models_dir / name).read_bytes()
        assert entry[part]["bytes"] == len(data)
        assert entry[part]["sha256"] == hashlib.sha256(data).hexdigest()
