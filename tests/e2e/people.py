"""Browser helpers for the experience tests: serve facility `lab` with its scripter, sign a
user in at a width, check the page fits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app import db
from app.devprovider import ClientSpec, ProviderConfig, create_provider_app, serve_in_thread
from app.models import Facility, Role, Script
from app.services import integrations_admin
from app.services.people import facility_by_slug
from app.testing import LiveServer
from tests.conftest import (
    PASSWORD,
    add_member,
    close_live,
    create_facility,
    create_user,
    demo_oauth_fields,
    make_app,
)
from tests.e2e.conftest import shot

WIDTHS = (1280, 375)


@contextmanager
def scripter_lab(tmp_path: Path, **config: Any) -> Iterator[LiveServer]:
    """A migrated app (`config` over the test defaults) served on loopback, with facility
    `lab` and its scripter sam@example.com ("Sam"); closed when the block ends."""
    live = LiveServer(make_app(tmp_path, **config))
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        sam = create_user(session, email="sam@example.com", name="Sam")
        add_member(session, user=sam, facility=lab, role=Role.scripter)
        session.commit()
    try:
        yield live
    finally:
        close_live(live)


def add_script(live: LiveServer, *, name: str, source: str, **fields: Any) -> int:
    """Add a script `name` of `source` (and `fields`, e.g. published=True) to facility `lab`;
    its id."""
    with live.app.app_context():
        session = db.session()
        lab = facility_by_slug(session, "lab")
        script = Script(facility_id=lab.id, name=name, source=source, **fields)
        session.add(script)
        session.commit()
        return script.id


def add_lab_member(live: LiveServer, *, email: str, name: str, role: Role) -> int:
    """Add a user `email` named `name` to facility `lab` as `role`; their id."""
    with live.app.app_context():
        session = db.session()
        lab = facility_by_slug(session, "lab")
        user = create_user(session, email=email, name=name)
        add_member(session, user=user, facility=lab, role=role)
        session.commit()
        return user.id


def signed_in(
    browser: Any,
    live: LiveServer,
    email: str,
    *,
    width: int = 1280,
    height: int = 900,
    timezone: str | None = None,
    bypass_csp: bool = False,
) -> Any:
    """A new page of a browser context signed in as `email`, `width` x `height` pixels, its
    clock in the IANA zone `timezone` (the machine's when None); `bypass_csp` lets a test
    add its own inline script (the accessibility checker)."""
    context = browser.new_context(viewport={"width": width, "height": height},
                                  timezone_id=timezone, bypass_csp=bypass_csp)
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def admin_of_lab(browser: Any, live: LiveServer) -> Any:
    """Facility `lab` ("The Lab") with admin@example.com as its admin, and a page of theirs
    signed in (1280 x 800)."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab", name="The Lab")
        admin = create_user(session, email="admin@example.com", name="Avery Admin")
        add_member(session, user=admin, facility=lab, role=Role.admin)
        session.commit()
    return signed_in(browser, live, "admin@example.com", height=800)


@contextmanager
def lab_oauth_provider(live: LiveServer, *, client_secret: str = "the-secret") -> Iterator[Any]:
    """A dev OAuth provider on loopback that knows client `the-client` (secret `the-secret`),
    and facility `lab`'s integration `demo` for it, configured with `client_secret`."""
    spec = ClientSpec("the-client", "the-secret", [f"{live.url}/oauth/callback"])
    with serve_in_thread(create_provider_app(ProviderConfig(clients=[spec]))) as provider:
        with live.app.app_context():
            lab = db.session.query(Facility).filter_by(slug="lab").one()
            integrations_admin.create_custom(
                db.session(),
                facility=lab,
                fields=demo_oauth_fields(
                    provider.url, client_id="the-client", client_secret=client_secret
                ),
            )
            db.session.commit()
            db.session.remove()
        yield provider


def lands_on(page: Any, selector: str) -> bool:
    """Whether a press at the middle of `selector`, where it is now, lands on it (and not
    on something drawn over it)."""
    return bool(page.evaluate(
        """(selector) => {
            const node = document.querySelector(selector);
            const box = node.getBoundingClientRect();
            const x = box.left + box.width / 2, y = box.top + box.height / 2;
            const hit = document.elementFromPoint(x, y);
            return node === hit || node.contains(hit);
        }""",
        selector,
    ))


def fits(page: Any, name: str) -> None:
    """Screenshot the page and check it does not scroll sideways at its width."""
    shot(page, name)
    width = page.viewport_size["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{name}: the page is {scroll_width}px wide at {width}px"


def todays_time_shown(page: Any, when: Any) -> None:
    """Assert a `<time>` of today in a narrow column (runs.runHistory) says its hour and
    minute in the page's locale, and its whole local time on hover."""
    expected = page.evaluate("""(iso) => [new Date(iso).toLocaleTimeString([], {hour: "2-digit",
        minute: "2-digit"}), new Date(iso).toLocaleString()]""", when.get_attribute("datetime"))
    assert [when.inner_text(), when.get_attribute("title")] == expected
