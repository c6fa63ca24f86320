"""Runs name the webhook trigger that started them: `webhook_trigger_id` in the API, the
trigger's name on the run page, and a filter of the runs list, its export and the Runs
page by trigger (another facility's trigger id finds nothing)."""

from __future__ import annotations

from typing import Any

from tests.app.web.test_webhook_triggers import call, ended, hook, make, world

__all__ = ["world"]  # the fixture, shared with the triggers' own tests


def test_a_run_names_its_trigger_and_the_runs_filter_by_it(world: dict[str, Any]) -> None:
    made, other = make(world), make(world)
    first = hook(world, made["url"], json={"n": 1}).json()["run_id"]
    second = hook(world, other["url"], json={"n": 2}).json()["run_id"]
    ended(world, first), ended(world, second)
    shown = call(world, "sam", "GET", f"/api/f/lab/runs/{first}").json()
    assert shown["webhook_trigger_id"] == made["id"]
    listed = call(world, "sam", "GET", f"/api/f/lab/runs?webhook_trigger_id={made['id']}")
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()] == [first]
    export = call(world, "sam", "GET",
                  f"/api/f/lab/runs/export?format=json&webhook_trigger_id={other['id']}")
    assert export.status_code == 200, export.text
    assert [line for line in export.text.splitlines() if first in line] == []
    assert second in export.text

    web = world["clients"]["sam"].http
    page = web.get(f"{world['live'].url}/f/lab/runs/{first}", timeout=30)
    assert 'id="run-webhook-trigger"' in page.text and "Signup form</a>" in page.text
    runs = web.get(f"{world['live'].url}/f/lab/runs?webhook_trigger_id={made['id']}", timeout=30)
    assert 'id="hook-filter"' in runs.text and "Signup form" in runs.text
    assert first in runs.text and second not in runs.text

    # Revoked: its runs stay, no longer naming it (`trigger` still says webhook).
    base = f"/api/f/lab/scripts/{world['ids']['echo']}/triggers"
    assert call(world, "sam", "DELETE", f"{base}/{made['id']}").status_code == 204
    kept = call(world, "sam", "GET", f"/api/f/lab/runs/{first}").json()
    assert (kept["trigger"], kept["webhook_trigger_id"]) == ("webhook", None)


def test_another_facilitys_trigger_id_finds_none_of_their_runs(world: dict[str, Any]) -> None:
    theirs = call(world, "oz", "POST", f"/api/f/other/scripts/{world['ids']['theirs']}/triggers",
                  json={"name": "Theirs"})
    assert theirs.status_code == 201, theirs.text
    run_id = hook(world, theirs.json()["url"], json={}).json()["run_id"]
    ended(world, run_id)
    trigger_id = theirs.json()["id"]
    for who in ("ada", "sam"):
        found = call(world, who, "GET", f"/api/f/lab/runs?webhook_trigger_id={trigger_id}")
        assert (found.status_code, found.json()) == (200, [])
        page = world["clients"][who].http.get(
            f"{world['live'].url}/f/lab/runs?webhook_trigger_id={trigger_id}", timeout=30)
        assert "which is not a webhook trigger of" in page.text and run_id not in page.text
        assert "Theirs" not in page.text


def test_a_bad_trigger_filter_is_a_400_naming_it(world: dict[str, Any]) -> None:
    bad = call(world, "sam", "GET", "/api/f/lab/runs?webhook_trigger_id=x")
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["field"] == "webhook_trigger_id"
    assert "Unknown query parameter" not in error["message"]  # a filter the list takes
