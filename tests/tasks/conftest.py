"""Fixtures for the task-suite tests: a small generated suite shared by the session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundled_suite(tmp_path_factory) -> Path:
    """A generated suite (20 tasks covering every bug family, seed 0); returns its instances.jsonl.

    The repositories are in `bundled_suite.parent / "repos"` (the default mirror).
    """
    from swesrl.tasks import build_suite

    return build_suite(tmp_path_factory.mktemp("suite"), n=20, seed=0)
