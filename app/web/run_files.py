"""Runs as a downloaded file (GET .../runs/export): CSV or JSON Lines, written a row at a
time as the rows are read, each run's error in the words its page shows.

CSV cells are safe to open in a spreadsheet: text starting with a character a spreadsheet
reads as a formula (= + - @, and tab or carriage return, which some strip first) gets a
leading ' (OWASP's advice against CSV injection), so a script named "=HYPERLINK(...)" is
shown, not run. JSON Lines needs no such care: no spreadsheet reads it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response, stream_with_context

from app.models._types import iso
from app.services.run_export import MAX_EXPORT_ROWS, ExportRow
from app.web.wording import error_in_words

COLUMNS = (
    "id", "script_id", "script", "version", "status", "trigger", "schedule_id",
    "webhook_trigger_id", "user_id", "user", "created_at", "started_at", "finished_at",
    "duration_ms", "error_code", "error",
)
MEDIA = {"csv": "text/csv", "json": "application/x-ndjson"}
SUFFIX = {"csv": "csv", "json": "jsonl"}
# What a spreadsheet may read as the start of a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def row_values(row: ExportRow) -> dict[str, Any]:
    """A run's row: times in ISO 8601 UTC, its error (if any) as a member's sentence."""
    return {
        "id": row.id,
        "script_id": row.script_id,
        "script": row.script,
        "version": row.version,
        "status": row.status,
        "trigger": row.trigger,
        "schedule_id": row.schedule_id,
        "webhook_trigger_id": row.webhook_trigger_id,
        "user_id": row.user_id,
        "user": row.user,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "duration_ms": row.duration_ms,
        "error_code": row.error_code,
        # Without the failing service's name: finding it reads each run's calls.
        "error": error_in_words(row.error_code, None, row.error_reason)
        if row.error_code else None,
    }


def cell(value: Any) -> Any:
    """A CSV cell: None empty, text a spreadsheet would read as a formula quoted with '."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_lines(rows: Iterable[ExportRow]) -> Iterator[str]:
    """The header row, then a line per run."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable[Any]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(COLUMNS)
    for row in rows:
        values = row_values(row)
        yield line(cell(values[name]) for name in COLUMNS)


def json_lines(rows: Iterable[ExportRow]) -> Iterator[str]:
    """A JSON object per run and line, the CSV's columns as keys."""
    for row in rows:
        yield json.dumps(row_values(row), ensure_ascii=False) + "\n"


def download(rows: Iterable[ExportRow], *, kind: str, name: str, total: int) -> Response:
    """The streamed answer: the file `name`.<suffix> of `rows`, saying how many matched
    (`total`) and whether the file holds fewer."""
    lines = csv_lines(rows) if kind == "csv" else json_lines(rows)
    headers = {
        "Content-Disposition": f'attachment; filename="{name}.{SUFFIX[kind]}"',
        "Export-Total": str(total),
        "Cache-Control": "no-store",
    }
    if total > MAX_EXPORT_ROWS:
        headers["Export-Truncated"] = "true"
    return Response(
        stream_with_context(lines), headers=headers, content_type=f"{MEDIA[kind]}; charset=utf-8"
    )
