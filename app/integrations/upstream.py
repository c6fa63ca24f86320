"""The upstream exchange of a script call: send on the guarded transport, follow redirects
only within the integration's origins, read the answer under its size cap; all of it
within the call's deadline (deadlines.Deadline), however slowly the service answers."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Any

import requests

from app.integrations import deadlines, destinations, transport
from app.integrations.destinations import DestinationRefused
from app.models import Integration
from sandbox import HostCallError

MAX_REDIRECTS = 5
_BODY_CHUNK = 64 * 1024


def send(
    http: requests.Session,
    integration: Integration,
    method: str,
    url: str,
    headers: dict[str, str],
    params: list[tuple[str, str]],
    body: dict[str, Any],
    deadline: deadlines.Deadline,
    origins: list[destinations.Origin],
) -> requests.Response:
    """Send the request, following redirects only within the integration's origins; the
    body is for `read`, under the same deadline."""
    try:
        with deadline:
            response = http.request(
                method,
                url,
                headers=headers,
                params=params or None,
                timeout=deadline.seconds,
                allow_redirects=False,
                stream=True,
                **body,
            )
            for _ in range(MAX_REDIRECTS):
                if not response.is_redirect:
                    return response
                location = response.headers.get("Location", "")
                response.close()
                try:
                    next_url = destinations.check_redirect(location, response.url, origins)
                except DestinationRefused as exc:
                    # Said without the redirect's path or query: the service chose them, and a
                    # reflecting service may have put the credential there.
                    target = destinations.origin_of(exc.url or "")
                    raise DestinationRefused(
                        f"{integration.name} redirected to {target or 'a URL'} outside the "
                        "integration's origins; the redirect was not followed",
                        url=target,
                    ) from None
                if response.status_code in (301, 302, 303) and method != "HEAD":
                    method, body = "GET", {}
                response = http.request(
                    method,
                    next_url,
                    headers=headers,
                    timeout=deadline.seconds,
                    allow_redirects=False,
                    stream=True,
                    **body,
                )
            response.close()
            raise HostCallError(
                "integration_unavailable",
                f"{integration.name} redirected more than {MAX_REDIRECTS} times",
            )
    except requests.Timeout:
        raise HostCallError(
            "integration_timeout",
            f"{integration.name} did not answer within {deadline.seconds:g} s",
            service=integration.key,
        ) from None
    except requests.RequestException as exc:
        refused = transport.refused_address(exc)
        if refused is not None:
            raise DestinationRefused(
                f"{refused.host} resolves to {refused.address}, which the server may not "
                "reach; private networks are allowed only by the server operator "
                "(SCRIPTBOX_PRIVATE_NETWORK_ALLOW), link-local and metadata addresses never"
            ) from None
        raise HostCallError(
            "integration_unavailable",
            f"{integration.name} could not be reached ({type(exc).__name__})",
            service=integration.key,
        ) from None


def read(
    response: requests.Response,
    integration: Integration,
    *,
    cap: int,
    deadline: deadlines.Deadline,
) -> bytes:
    """The answer's body, refused past `cap` bytes or once `deadline` (the one it was sent
    under) passes; the response is closed."""
    chunks, size = [], 0
    try:
        with deadline:
            for chunk in response.iter_content(_BODY_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise HostCallError(
                        "integration_unavailable",
                        f"{integration.name}'s answer is larger than {cap} bytes",
                        service=integration.key,
                    )
                chunks.append(chunk)
    except requests.Timeout:
        raise HostCallError(
            "integration_timeout",
            f"{integration.name} did not send its whole answer within {deadline.seconds:g} s",
            service=integration.key,
        ) from None
    except requests.RequestException as exc:
        raise HostCallError(
            "integration_unavailable",
            f"{integration.name}'s answer broke off ({type(exc).__name__})",
            service=integration.key,
        ) from None
    finally:
        response.close()
    return b"".join(chunks)


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks to wait (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def response_headers(response: requests.Response) -> dict[str, str]:
    """The headers a script may see: no hop-by-hop headers, no cookies."""
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower() not in destinations.HOP_BY_HOP
        and name.lower() not in ("set-cookie", "set-cookie2")
    }
