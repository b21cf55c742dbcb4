"""Requests a real Label Studio 1.23.2 sent, kept in ``tests/fixtures/labelstudio-1.23``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

FOLDER = Path(__file__).parent / "fixtures" / "labelstudio-1.23"


@cache
def _load(name: str) -> str:
    return (FOLDER / name).read_text(encoding="utf-8")


def fixture(name: str) -> dict:
    """A fresh copy of one captured request: ``{trigger, method, path, headers, body}``."""
    return json.loads(_load(name))


def fixture_names() -> list[str]:
    return sorted(path.name for path in FOLDER.glob("*.json"))


REFERENCE_CONFIG: str = json.loads(_load("setup.json"))["body"]["schema"]
