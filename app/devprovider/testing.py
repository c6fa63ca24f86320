"""answer_consent: play the user on the consent page without a browser (for tests)."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import requests

_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def answer_consent(
    authorization_url: str,
    *,
    username: str = "alice",
    approve: bool = True,
    session: requests.Session | None = None,
    timeout: float = 10,
) -> str:
    """Open the consent page, approve or deny it, and return the redirect back to the client."""
    http = session or requests.Session()
    try:
        page = http.get(authorization_url, allow_redirects=False, timeout=timeout)
        if page.is_redirect:
            # Authlib refused the request and sends the error back to the client.
            return page.headers["Location"]
        page.raise_for_status()
        match = _FORM_ACTION.search(page.text)
        if match is None:
            raise ValueError("no consent form on the page")
        action = urljoin(page.url, html.unescape(match.group(1)))
        decision = "approve" if approve else "deny"
        answer = http.post(
            action,
            data={"username": username, "decision": decision},
            allow_redirects=False,
            timeout=timeout,
        )
        if not answer.is_redirect:
            answer.raise_for_status()
            raise ValueError(f"consent answer was {answer.status_code}, not a redirect")
        return answer.headers["Location"]
    finally:
        if session is None:
            http.close()
