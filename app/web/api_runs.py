"""The JSON API for a run's extras: run it again, and its error in words for members.

Same authentication and CSRF rule as `app.web.api`; views parse, call a service, commit once.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from app import db, extensions
from app.lifecycle import is_final
from app.services import run_history
from app.services import scripts as scripts_service
from app.web.security import check_csrf, require_member, require_user
from app.web.wording import error_in_words

bp = Blueprint("api_run_actions", __name__, url_prefix="/api")


@bp.before_request
def _authenticate() -> None:
    require_user()
    check_csrf()


@bp.post("/f/<slug>/runs/<run_id>/rerun")
def rerun(slug: str, run_id: str) -> ResponseReturnValue:
    """Start the run again with the same input: the script as members run it now, or the
    same source for an editor run (scripters)."""
    member = require_member(slug)
    old = scripts_service.get_run(db.session(), member, run_id)
    run = scripts_service.create_run(
        db.session(),
        member,
        script_id=old.script_id,
        source=None if old.script_id else old.source,
        run_input=old.input,
        interactive=request.authorization is None,
    )
    db.session.commit()
    extensions.run_queue().submit(run.id)
    return jsonify(run.to_dict()), 200 if is_final(run.status) else 201


@bp.get("/f/<slug>/runs/<run_id>/explain")
def explain(slug: str, run_id: str) -> ResponseReturnValue:
    """The run's error as a sentence a member can act on (null when it did not fail)."""
    member = require_member(slug)
    run = scripts_service.get_run(db.session(), member, run_id)
    if not run.error_code:
        return jsonify({"words": None})
    service = run_history.failing_service(db.session(), run=run)
    return jsonify({"words": error_in_words(run.error_code, service)})
