"""Script versions: keep one per save, list, diff, restore, publish (flush, never commit)."""

from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import EditConflict, NotFound
from app.models import Schedule, Script, ScriptVersion
from app.services import source_checks

MAX_DIFF_LINES = 2000


def latest_version(session: Session, *, script: Script) -> ScriptVersion | None:
    """The newest saved version of a script."""
    return session.scalar(
        select(ScriptVersion)
        .where(ScriptVersion.script_id == script.id)
        .order_by(ScriptVersion.number.desc())
        .limit(1)
    )


def require_newest(session: Session, *, script: Script, base: int | None) -> None:
    """Refuse (EditConflict) a save begun from version `base` (0: from none) when the
    script's newest version is another: saving would overwrite it unseen. None (a client
    that does not say what it started from) is not checked."""
    if base is None:
        return
    latest = latest_version(session, script=script)
    newest = latest.number if latest is not None else 0
    if base != newest:
        raise EditConflict(
            f"v{newest} was saved after the version this edit started from: another tab or "
            "another scripter changed the script.",
            field="base_version",
            version=newest,
        )


def record_version(session: Session, *, script: Script, user_id: int | None) -> ScriptVersion:
    """Keep the script's current source and inputs as a new version (unless unchanged)."""
    latest = latest_version(session, script=script)
    if (
        latest is not None
        and latest.source == script.source
        and latest.input_schema == script.input_schema
    ):
        return latest  # a save without changes keeps no duplicate
    number = (session.scalar(
        select(func.max(ScriptVersion.number)).where(ScriptVersion.script_id == script.id)
    ) or 0) + 1
    version = ScriptVersion(
        script_id=script.id,
        number=number,
        source=script.source,
        input_schema=script.input_schema or {},
        created_by=user_id,
    )
    session.add(version)
    session.flush()
    return version


def list_versions(session: Session, *, script: Script) -> list[ScriptVersion]:
    """The script's versions, newest first."""
    return list(
        session.scalars(
            select(ScriptVersion)
            .where(ScriptVersion.script_id == script.id)
            .order_by(ScriptVersion.number.desc())
        )
    )


def get_version(session: Session, *, script: Script, number: int) -> ScriptVersion:
    """One version of the script by its number."""
    version = session.scalar(
        select(ScriptVersion).where(
            ScriptVersion.script_id == script.id, ScriptVersion.number == number
        )
    )
    if version is None:
        raise NotFound(f"{script.name} has no version {number}")
    return version


def previous_version(session: Session, *, script: Script, number: int) -> ScriptVersion | None:
    """The latest version saved before `number`, or None for the first."""
    return session.scalar(
        select(ScriptVersion)
        .where(ScriptVersion.script_id == script.id, ScriptVersion.number < number)
        .order_by(ScriptVersion.number.desc())
        .limit(1)
    )


def restore_version(
    session: Session, *, script: Script, number: int, user_id: int
) -> ScriptVersion:
    """Make an old version the draft again; the restore is itself kept as a new version."""
    version = get_version(session, script=script, number=number)
    script.source = version.source
    script.input_schema = version.input_schema
    session.flush()
    return record_version(session, script=script, user_id=user_id)


def publish_version(
    session: Session, *, script: Script, number: int, by: int | None
) -> ScriptVersion:
    """Members run this version from now on. Its publisher (`by`) chose it, so their own
    schedules of the script approve it (Schedule.approved_version). A version that does
    not compile is refused: every member's run of it would fail."""
    version = get_version(session, script=script, number=number)
    # Compiled in a sandbox worker, within SCRIPTBOX_COMPILE_TIME_S (app.runner.checks).
    found = source_checks.check_source(version.source)
    source_checks.refuse_if_too_slow(found)
    problem = found.error
    if problem is not None:
        source_checks.refuse_as_not_compiling(
            problem,
            what=f"version {version.number}",
            then="members could only run it into that error; fix it, save, then publish",
        )
    script.published = True
    script.published_version = version.number
    if by is not None:
        for schedule in session.scalars(
            select(Schedule).where(Schedule.script_id == script.id, Schedule.created_by == by)
        ):
            schedule.approve(version.number)
    session.flush()
    return version


def unpublish(session: Session, *, script: Script) -> None:
    """Members no longer see the script."""
    script.published = False
    script.published_version = None
    session.flush()


def published(session: Session, *, script: Script) -> ScriptVersion | None:
    """The version members run, if the script is published."""
    if not script.published or script.published_version is None:
        return None
    return session.scalar(
        select(ScriptVersion).where(
            ScriptVersion.script_id == script.id,
            ScriptVersion.number == script.published_version,
        )
    )


def unapproved(
    session: Session, script: Script, *, approved: int | None, owner_id: int | None
) -> ScriptVersion | None:
    """The published version of `script` (a schedule's or trigger's, or its on-failure
    script) that its member `owner_id` has not seen: neither `approved` nor saved by them;
    else None."""
    if script.published_version is None or script.published_version == approved:
        return None
    version = published(session, script=script)
    if version is None or not waits_for(
        version.number, version.created_by, approved=approved, owner_id=owner_id
    ):
        return None
    return version


def waits_for(
    number: int, author: int | None, *, approved: int | None, owner_id: int | None
) -> bool:
    """Whether the published version `number`, saved by `author`, waits for member
    `owner_id` to see it (unapproved's rule, for a version read already): it is neither
    the one they `approved` nor theirs."""
    return number != approved and author != owner_id


def diff_lines(old: str, new: str) -> list[dict[str, Any]]:
    """A unified diff of two sources as lines tagged add / remove / context / hunk."""
    lines = []
    for text in difflib.unified_diff(
        old.splitlines(), new.splitlines(), "before", "after", lineterm="", n=3
    ):
        if text.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "remove", "@": "hunk"}.get(text[:1], "context")
        lines.append({"kind": kind, "text": text})
        if len(lines) >= MAX_DIFF_LINES:
            break
    return lines
