"""Offline tests never write to the user's cache: THRIFTY_CACHE points into tmp_path."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "embeddings"
