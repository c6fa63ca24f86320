"""Which external identity an account is: the integration's who-am-I request, sent with the
new credential right after a sign-in or key entry (catalog field `whoami`).

It goes through the same checked transport as script calls. The identity is a name to show
(a login, an email), never a credential: an answer that reflects the credential gives none.
Any failure gives None, so naming an account can never break connecting it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import requests

from app.integrations import destinations
from app.integrations.catalog_calls import answer_field
from app.integrations.outgoing import NOT_SECRET
from app.integrations.redaction import REDACTED, Redactor
from app.integrations.vault import Vault
from app.integrations.verification import send_as_account
from app.models import Integration
from sandbox import HostCallError

log = logging.getLogger(__name__)
_MAX_ANSWER_BYTES = 256 * 1024


def identify(
    integration: Integration,
    *,
    creds: Mapping[str, str],
    parameters: Mapping[str, str],
    vault: Vault,
    http: requests.Session | None = None,
) -> str | None:
    """The account's identity from the integration's who-am-I answer; None when the
    integration declares no such request or it failed."""
    spec = integration.whoami
    if not spec:
        return None
    try:
        response, placed = send_as_account(
            integration,
            method=str(spec.get("method") or "GET"),
            path=str(spec["path"]),
            creds=creds,
            parameters=parameters,
            vault=vault,
            http=http,
        )
        if response.status_code != 200 or len(response.content) > _MAX_ANSWER_BYTES:
            log.info("whoami of %s answered HTTP %s", integration.key, response.status_code)
            return None
        answer = response.json()
    except (destinations.DestinationRefused, HostCallError, requests.RequestException,
            ValueError) as exc:
        log.info("whoami of %s failed: %s", integration.key, type(exc).__name__)
        return None
    identity = answer_field(answer, str(spec.get("field") or ""))
    if identity is None:
        return None
    secrets = [*(v for k, v in creds.items() if k not in NOT_SECRET), *placed]
    if REDACTED in Redactor(secrets).text(identity):
        return None  # the service reflected the credential: that is no name to show
    return identity
