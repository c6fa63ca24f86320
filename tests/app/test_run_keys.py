"""A run that needs a secret sealed under a key the server no longer has (a key rotation
done in the wrong order) ends with words the operator can act on, not "the error was
logged"."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from app import db
from app.integrations.vault import Vault
from app.models import Account, Facility, Role
from app.runner.driver import KEYS_MESSAGE
from tests.conftest import create_integration, make_app, signed_in_lab, stop_app


def test_a_secret_under_a_missing_key_fails_the_run_in_words(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        with app.app_context():
            clients = signed_in_lab(app, roles=[Role.scripter], csrf="t")
            session = db.session()
            lab = session.query(Facility).filter_by(slug="lab").one()
            keyed = create_integration(session, facility=lab, key="keyed")
            elsewhere = Vault([Fernet.generate_key().decode()])  # a key this server lacks
            session.add(Account(facility_id=lab.id, integration_id=keyed.id,
                                owner_kind="master",
                                credentials_enc=elsewhere.encrypt_json({"api_key": "k"})))
            session.commit()
        answer = clients[str(Role.scripter)].post(
            "/api/f/lab/runs", headers={"X-CSRF-Token": "t"},
            json={"source": 'integrations.get("keyed", "/x")', "wait": 30})
        run = answer.get_json()
        assert run["status"] == "failed", run
        assert run["error"]["code"] == "internal_error"
        assert run["error"]["message"] == KEYS_MESSAGE
    finally:
        stop_app(app)
