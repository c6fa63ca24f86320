"""The demo's scripts are published as versions, as the editor publishes: members (and the
README's API walk-through) run version 1 while a scripter edits the draft, and a demo
database from before, whose scripts were published without a version, is mended."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, func, select

from app import db
from app.demo import SCRIPTS, install_demo
from app.models import Facility, Role, Script, ScriptVersion, User
from app.services import scripts as scripts_service
from app.services.context import MemberContext
from tests.conftest import make_app, stop_app


def _member(email: str, role: Role) -> MemberContext:
    session = db.session()
    user = session.scalar(select(User).where(User.email == email))
    facility = session.scalar(select(Facility).where(Facility.slug == "demo"))
    assert user is not None and facility is not None
    return MemberContext(user=user, facility=facility, role=role)


def _demo_scripts() -> dict[str, Script]:
    return {s.name: s for s in db.session.scalars(select(Script))}


def test_members_run_the_published_version_while_the_draft_changes(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        install_demo(app)
        with app.app_context():
            session = db.session()
            scripts = _demo_scripts()
            assert set(scripts) == set(SCRIPTS)
            for name, script in scripts.items():
                assert (script.published, script.published_version) == (True, 1), name
            who_am_i = scripts["Who am I at the demo provider"]
            scripter = _member("scripter@example.com", Role.scripter)
            scripts_service.update_script(
                session, scripter, who_am_i, source='result = "draft"'
            )
            run = scripts_service.create_run(
                session, _member("member@example.com", Role.member), script_id=who_am_i.id,
                source=None, run_input=None, interactive=False,
            )
            assert (run.version, run.source) == (1, SCRIPTS[who_am_i.name])
            session.rollback()
    finally:
        stop_app(app)


def test_an_older_demos_unversioned_scripts_are_published_as_a_version(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        install_demo(app)
        with app.app_context():  # as an older demo left them: published, no version
            session = db.session()
            session.execute(delete(ScriptVersion))
            for script in _demo_scripts().values():
                script.published_version = None
            session.commit()
        install_demo(app)
        install_demo(app)  # and again: nothing more to do
        with app.app_context():
            for name, script in _demo_scripts().items():
                assert script.published_version == 1, name
            assert db.session.scalar(select(func.count()).select_from(ScriptVersion)) == len(
                SCRIPTS
            )
    finally:
        stop_app(app)
