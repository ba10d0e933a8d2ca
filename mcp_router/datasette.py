"""Datasette metadata for the database: what each table, view and column means, with units.

The descriptions ship as ``data/datasette.json``; Datasette names a database after its file's stem, so
``metadata`` files them under that name: ``datasette "$(mcp-router db path)" -m <(mcp-router db metadata)``.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any


def metadata(db_path: Path) -> dict[str, Any]:
    described = json.loads(files("mcp_router").joinpath("data/datasette.json").read_text(encoding="utf-8"))
    return {"title": described["title"], "description": described["description"],
            "databases": {Path(db_path).stem: {"tables": described["tables"]}}}
