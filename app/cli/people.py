"""Commands on people: create users and facilities, set memberships, end a user's sessions."""

from __future__ import annotations

import click

from app.cli.apps import load_current_app


@click.command("create-user")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.password_option(help="At least 8 characters.")
def create_user(email: str, name: str, password: str) -> None:
    """Create a Scriptbox user."""
    from app import db
    from app.services import people

    with load_current_app().app_context():
        user = people.create_user(db.session(), email=email, name=name, password=password)
        db.session.commit()
        click.echo(f"created user {user.email}")


@click.command("create-facility")
@click.option("--slug", required=True, help="Short name used in URLs, e.g. lab.")
@click.option("--name", default="")
def create_facility(slug: str, name: str) -> None:
    """Create a facility (tenant)."""
    from app import db
    from app.services import people

    with load_current_app().app_context():
        facility = people.create_facility(db.session(), name=name or slug, slug=slug)
        db.session.commit()
        click.echo(f"created facility {facility.slug}")


@click.command("add-member")
@click.option("--facility", "slug", required=True)
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["member", "scripter", "admin"]), default="member",
              show_default=True)
def add_member(slug: str, email: str, role: str) -> None:
    """Add a user to a facility with a role (or change their role)."""
    from app import db
    from app.services import people

    with load_current_app().app_context():
        user = people.user_by_email(db.session(), email)
        facility = people.facility_by_slug(db.session(), slug)
        people.set_membership(db.session(), user=user, facility=facility, role=role)
        db.session.commit()
        click.echo(f"{user.email} is now {role} in {facility.slug}")


@click.command("end-sessions")
@click.option("--email", required=True)
def end_sessions(email: str) -> None:
    """Sign a user out everywhere: every browser session ends, open pages close, and every
    API token of theirs is revoked."""
    from app import db
    from app.services import people, sessions

    with load_current_app().app_context():
        user = people.user_by_email(db.session(), email)
        ended = sessions.end_sessions(db.session(), user_id=user.id)
        revoked = sessions.revoke_api_tokens(db.session(), user_id=user.id)
        db.session.commit()
        click.echo(
            f"ended {_count(ended, 'session')} and revoked {_count(revoked, 'API token')} "
            f"of {user.email}"
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"

