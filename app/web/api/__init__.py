"""The REST API (JSON; session or API-token auth), one module per noun.

Views are thin: the declared models (app/web/openapi.py) parse and check the input, the
view checks the role, calls a service and commits once.
"""

from __future__ import annotations

from flask import Blueprint

from app.web.api import (
    accounts,
    admin,
    connect_links,
    integration_state,
    integrations,
    me,
    members,
    prompts,
    run_calls,
    runs,
    schedules,
    scripts,
    store,
    triggers,
    versions,
    webhooks,
)

BLUEPRINTS: tuple[Blueprint, ...] = (
    me.bp,
    scripts.bp,
    versions.bp,
    runs.bp,
    run_calls.bp,
    prompts.bp,
    schedules.bp,
    triggers.bp,
    store.bp,
    integrations.bp,
    integration_state.bp,
    accounts.bp,
    connect_links.bp,
    members.bp,
    admin.bp,
    webhooks.bp,
)
