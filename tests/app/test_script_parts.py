"""A script's schedules and webhook triggers are listed and found by id through one helper
(app.services.script_parts): only the script's own, oldest first; another script's or
another facility's id is a NotFound in the kind's words, never that part."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Role, Schedule, WebhookTrigger
from app.services import schedules, triggers
from app.services.context import MemberContext
from app.services.scripts import create_script
from tests.conftest import add_member, create_facility, create_user


def schedule_of(member: MemberContext, script_id: int) -> Schedule:
    return Schedule(facility_id=member.facility.id, script_id=script_id,
                    created_by=member.user.id, cron="0 9 * * *", timezone="UTC")


def trigger_of(member: MemberContext, script_id: int, name: str) -> WebhookTrigger:
    return WebhookTrigger(facility_id=member.facility.id, script_id=script_id,
                          owner_id=member.user.id, name=name, token_hash=name * 64)


@pytest.mark.parametrize(("listing", "getting", "missing"), [
    (schedules.list_schedules, schedules.get_schedule, "no such schedule"),
    (triggers.list_triggers, triggers.get_trigger, "no such webhook trigger"),
])
def test_only_the_scripts_own_parts_are_listed_and_found(
    session: Session, listing: Any, getting: Any, missing: str
) -> None:
    lab, other = create_facility(session), create_facility(session, slug="other", name="O")
    ada, oz = create_user(session), create_user(session, email="oz@example.com")
    add_member(session, user=ada, facility=lab, role=Role.scripter)
    add_member(session, user=oz, facility=other, role=Role.scripter)
    ours = MemberContext(ada, lab, Role.scripter)
    theirs = MemberContext(oz, other, Role.scripter)
    report = create_script(session, ours, name="Report", source="result = 1", published=True)
    digest = create_script(session, ours, name="Digest", source="result = 2", published=True)
    foreign = create_script(session, theirs, name="Theirs", source="result = 3", published=True)
    is_schedule = listing is schedules.list_schedules

    def part(member: MemberContext, script_id: int, name: str) -> Any:
        if is_schedule:
            return schedule_of(member, script_id)
        return trigger_of(member, script_id, name)

    first, other_script, second, foreign_part = (
        part(ours, report.id, "a"), part(ours, digest.id, "b"), part(ours, report.id, "c"),
        part(theirs, foreign.id, "d"))
    session.add_all([first, other_script, second, foreign_part])
    session.flush()

    assert [found.id for found in listing(session, ours, report)] == [first.id, second.id]
    assert getting(session, ours, report, second.id) is second
    for wrong in (other_script.id, foreign_part.id, foreign_part.id + 1000):
        with pytest.raises(NotFound) as refused:
            getting(session, ours, report, wrong)
        assert refused.value.message == missing
    # Their script's part, asked for under their script but by our member: still none.
    with pytest.raises(NotFound):
        getting(session, ours, foreign, foreign_part.id)
    assert listing(session, ours, foreign) == []
