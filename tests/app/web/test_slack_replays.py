"""A Slack-signed trigger: Slack signs the body and its time, not the other headers. So the
body's event_id, not an Idempotency-Key or X-GitHub-Delivery someone adds, is its delivery
id: a signed event replayed within Slack's 5 minutes with such a header added starts no
second run."""

from __future__ import annotations

from typing import Any

from app.services.trigger_deliveries import delivery_id
from tests.app.web.test_webhook_trigger_slack import event, make_slack, run_count, signed
from tests.app.web.test_webhook_triggers import hook, world

__all__ = ["world"]  # the fixture


def test_a_replayed_signed_event_with_a_header_added_starts_no_second_run(
    world: dict[str, Any],
) -> None:
    made = make_slack(world)
    body = event("EvReplay")
    headers = signed(body)
    first = hook(world, made["url"], data=body, headers=headers)
    assert first.status_code == 202, first.text
    before = run_count(world)
    for added in ({"Idempotency-Key": "another"}, {"X-GitHub-Delivery": "yet-another"}):
        again = hook(world, made["url"], data=body, headers={**headers, **added})
        assert again.status_code == 202, again.text
        assert again.json()["run_id"] == first.json()["run_id"], added
        assert again.json()["repeated"] is True
    assert run_count(world) == before


def test_a_signed_bodys_event_id_comes_before_the_headers() -> None:
    headers = {"Idempotency-Key": "header-id"}
    assert delivery_id(headers.get, slack_body={"event_id": "Ev1"}) == "Ev1"
    assert delivery_id(headers.get, slack_body={"type": "url_verification"}) == "header-id"
    assert delivery_id(headers.get) == "header-id"
