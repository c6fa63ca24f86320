"""Checking typed credentials (API key, key + secret, Basic) before they are stored.

An integration may declare a verification request (catalog field `verify`): it is sent with
the candidate credentials through the same checked transport as script calls, and its
answer decides whether the account is stored. The provider's answer is reported in words,
with every credential value taken out of it. It is read within VERIFY_TIMEOUT_S in all and
up to VERIFY_MAX_BYTES: a larger one is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from app.integrations import body_caps, deadlines, destinations, transport
from app.integrations.defaults import defaults_of, secret_values
from app.integrations.placements import place_credentials, placed_secrets, placements_of
from app.integrations.redaction import Redactor
from app.integrations.vault import Vault
from app.models import Integration
from sandbox import HostCallError, size_in_words

VERIFY_TIMEOUT_S = 10.0
# A check's answer is a status and a little JSON; a who-am-I's (identity.py) is one record.
VERIFY_MAX_BYTES = body_caps.MIB
_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Verdict:
    """What the provider said to the verification request: accepted or not, and in words."""

    ok: bool
    status: int | None
    message: str
    # False when the answer says nothing of the credentials (the check's address is not
    # found): the person has nothing to retype, the integration's settings are to correct.
    about_credentials: bool = True


def send_as_account(
    integration: Integration,
    *,
    method: str,
    path: str,
    creds: Mapping[str, str],
    parameters: Mapping[str, str],
    vault: Vault,
    http: requests.Session | None = None,
) -> tuple[requests.Response, list[str]]:
    """Send one request of the integration's own (a verification, a who-am-I) with these
    credentials on the guarded transport, no redirects; the answer and the secrets sent
    (the values placed, a Basic header's pair and the "user:password" it encodes, and the
    integration's default values that look like secrets), for redacting the answer.

    Raises DestinationRefused or HostCallError when it cannot be built, and requests'
    exceptions when it cannot be sent: DeadlinePassed past VERIFY_TIMEOUT_S, AnswerTooLarge
    for an answer over VERIFY_MAX_BYTES.
    """
    url = destinations.build_url(
        integration.base_url,
        path,
        parameters=parameters,
        allowed_hosts=integration.allowed_hosts or [],
    )
    headers, params = place_credentials(placements_of(integration), creds, parameters)
    placed = placed_secrets(headers, params)
    default_headers, default_query = defaults_of(integration, vault)
    # The admin's default values are sealed: an echo of them is no one's to read.
    placed.extend(secret_values(default_headers, default_query))
    session = http or transport.guarded_session()
    # In all: a trickling answer is cut off; and up to a cap: a flood is not held in memory.
    with deadlines.Deadline(VERIFY_TIMEOUT_S), body_caps.BodyCap(VERIFY_MAX_BYTES):
        response = session.request(
            method,
            url,
            headers={**default_headers, **headers},
            params=[*default_query.items(), *params] or None,
            timeout=VERIFY_TIMEOUT_S,
            allow_redirects=False,
        )
    return response, placed


def verify_credentials(
    integration: Integration,
    *,
    creds: Mapping[str, str],
    parameters: Mapping[str, str],
    vault: Vault,
    http: requests.Session | None = None,
) -> Verdict | None:
    """Send the integration's verification request with these credentials; None if it has none."""
    spec = integration.verify
    if not spec:
        return None
    name = integration.name
    method, path = str(spec.get("method") or "GET"), str(spec["path"])
    try:
        response, placed = send_as_account(
            integration,
            method=method,
            path=path,
            creds=creds,
            parameters=parameters,
            vault=vault,
            http=http,
        )
    except (destinations.DestinationRefused, HostCallError) as exc:
        return Verdict(False, None, f"the check of the {name} credentials cannot be sent: {exc}")
    except deadlines.DeadlinePassed:
        return Verdict(False, None, f"{name} did not answer within {VERIFY_TIMEOUT_S:g} s")
    except body_caps.AnswerTooLarge as exc:
        return Verdict(
            False,
            None,
            f"{name}'s answer to the check is larger than {size_in_words(exc.limit)}, "
            f"so the check was stopped; its request ({method} {path}) should ask for something "
            "small, such as the account's own profile",
        )
    except requests.RequestException as exc:
        if transport.refused_address(exc) is not None:
            # Only this: which private addresses answer, and how, is not the admin's to learn.
            return Verdict(False, None, f"{name}'s address is not allowed")
        return Verdict(
            False,
            None,
            f"{name} could not be reached to check the credentials ({type(exc).__name__})",
        )
    expected = int(spec.get("expected_status") or 200)
    if response.status_code == expected:
        return Verdict(True, response.status_code, f"{name} accepted the credentials")
    if response.status_code == 404:
        return _not_found(name, method, response.url)
    # Redacted before it is cut: a secret across the cut would otherwise show its start.
    said = Redactor([*creds.values(), *placed]).text(_in_words(response.text))
    said = said[:_EXCERPT_CHARS].strip()
    return Verdict(
        False,
        response.status_code,
        f"{name} refused the credentials: it answered HTTP {response.status_code}"
        + (f": {said}" if said else ""),
    )


def _not_found(name: str, method: str, url: str) -> Verdict:
    """A 404 to the check: its address (base URL and path) is likely wrong, not the typed
    credentials, and the body is most often the server's HTML "Not Found" page, so it is
    not quoted. The URL without its query, where a placed key may be."""
    where = urlsplit(url)._replace(query="", fragment="").geturl()
    return Verdict(
        False,
        404,
        f"{name} answered HTTP 404 (not found) to the check {method} {where}: its address "
        "may be wrong rather than the credentials; an admin can correct the integration's "
        "base URL or verification request in its Settings",
        about_credentials=False,
    )


# Where APIs put a refusal's words in a JSON body ({"error_description": ...},
# {"message": ...}, {"error": {"message": ...}}, {"detail": ...}), most specific first.
_SAID_IN = ("error_description", "message", "detail", "error")


def _in_words(text: str) -> str:
    """What a refusal's body says: a JSON error's own words, else the body as it is."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    while isinstance(body, dict):
        found = next((body[key] for key in _SAID_IN if body.get(key)), None)
        if isinstance(found, str):
            return found
        body = found
    return text
