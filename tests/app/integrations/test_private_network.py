"""Private networks are the operator's call (PRIVATE_NETWORK_ALLOW), never a facility admin's;
link-local and metadata addresses are never reached, whatever the spelling."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from app import db
from app.config import ConfigError, NetworkAllow, parse_network_allow
from app.integrations import transport
from app.integrations.transport import address_allowed, canonical_host
from app.migrate import alembic_config
from app.models import Integration
from tests.app.integrations.conftest import Canary
from tests.app.integrations.test_outbound_guards import KEY, integration, lab, run
from tests.conftest import make_app


@pytest.mark.parametrize(
    ("text", "entries"),
    [
        ("", ()),
        ("10.0.0.0/8", ("10.0.0.0/8",)),
        ("127.0.0.1/32:8080, 10.1.0.0/16", ("127.0.0.1/32:8080", "10.1.0.0/16")),
        ("[fd00::/8]:443-444 192.168.1.7", ("[fd00::/8]:443-444", "192.168.1.7/32")),
        (["::1"], ("::1/128",)),
    ],
)
def test_the_operators_list_is_parsed_once_at_start(text: Any, entries: tuple[str, ...]) -> None:
    assert tuple(str(e) for e in parse_network_allow(text)) == entries


@pytest.mark.parametrize(
    "value", ["localhost", "10.0.0.0/33", "127.0.0.1/32:0", "127.0.0.1/32:70000", "[::1]x", "1:2:3"]
)
def test_a_bad_private_network_list_refuses_to_start(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="SCRIPTBOX_PRIVATE_NETWORK_ALLOW"):
        make_app(tmp_path, PRIVATE_NETWORK_ALLOW=value)


# Special-purpose addresses not globally reachable (IANA), one or more per network of
# NOT_GLOBALLY_REACHABLE that a Python version's ipaddress tables might call global:
# Python 3.11.7 calls 192.0.0.8 and fec0::1 global, for one.
SPECIAL_PURPOSE = (
    "192.0.0.8",  # IETF protocol assignments
    "192.0.0.9",  # its PCP anycast, global to Python
    "100.64.0.1",  # carrier-grade NAT
    "198.18.0.1",  # benchmarking
    "240.0.0.1",  # reserved
    "0.1.2.3",  # "this network"
    "192.0.2.1",  # documentation
    "192.88.99.1",  # deprecated 6to4 relay anycast, global to Python
    "224.0.0.1",  # multicast, global to Python
    "fec0::1",  # deprecated site-local
    "fc00::1",  # unique local
    "2001:db8::1",  # documentation
    "3fff::1",  # documentation (RFC 9637)
    "5f00::1",  # SRv6 SIDs
    "2001::1",  # Teredo
    "100::1",  # discard-only
    "64:ff9b:1::1",  # local-use translation
    "ff02::1",  # multicast, global to Python
)

LOOPBACK_8080 = parse_network_allow("127.0.0.0/8:8080, [::1/128]:8080")
EVERYTHING = parse_network_allow("0.0.0.0/0, ::/0")


@pytest.mark.parametrize(
    ("address", "port", "allow", "allowed"),
    [
        ("93.184.216.34", 443, (), True),  # public
        ("127.0.0.1", 8080, (), False),
        ("127.0.0.1", 8080, LOOPBACK_8080, True),
        ("127.0.0.1", 8081, LOOPBACK_8080, False),  # the port is part of the rule
        ("::ffff:127.0.0.1", 8080, (), False),  # IPv4-mapped
        ("::ffff:127.0.0.1", 8080, LOOPBACK_8080, True),
        ("2002:7f00:1::", 8080, (), False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", 80, (), False),  # NAT64 around 10.0.0.1
        ("::1", 8080, LOOPBACK_8080, True),
        ("10.0.0.1", 80, (), False),
        ("100.64.0.1", 80, (), False),  # carrier-grade NAT
        ("169.254.169.254", 80, EVERYTHING, False),  # metadata: never
        ("169.254.1.1", 80, EVERYTHING, False),  # link-local: never
        ("fe80::1%eth0", 80, EVERYTHING, False),
        ("fd00:ec2::254", 80, EVERYTHING, False),
        ("0.0.0.0", 80, EVERYTHING, False),  # "this host" dials loopback: never
        ("::", 80, EVERYTHING, False),
        *((address, 443, (), False) for address in SPECIAL_PURPOSE),
        ("192.0.0.8", 443, parse_network_allow("192.0.0.0/24"), True),  # the operator's call
    ],
)
def test_address_rules(address: str, port: int, allow: Any, allowed: bool) -> None:
    assert address_allowed(address, port, allow) is allowed


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:7f00:1]", "127.0.0.1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("API.Example.COM.", "api.example.com"),
        ("deadbeef.example", "deadbeef.example"),
    ],
)
def test_every_ip_spelling_is_normalised(host: str, canonical: str) -> None:
    assert canonical_host(host) == canonical


@pytest.mark.parametrize(
    ("allow", "reached"),
    [("", False), ("127.0.0.1/32:{other}", False), ("127.0.0.1/32:{port}", True)],
)
def test_loopback_services_need_the_operators_permission(
    make: Any, canary: Canary, second_canary: Canary, allow: str, reached: bool
) -> None:
    app = make(PRIVATE_NETWORK_ALLOW=allow.format(port=canary.port, other=second_canary.port))
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"{canary.url}/base")
    outcome = run(app, facility, user, {"path": "/x"})
    if reached:
        assert outcome.ok and outcome.result["status"] == 200
        assert canary.leaked(KEY)
    else:
        assert outcome.error.code == "forbidden_destination"
        assert "SCRIPTBOX_PRIVATE_NETWORK_ALLOW" in outcome.error.message
        assert canary.arrivals == []


@pytest.mark.parametrize(
    ("host", "allow"),
    [
        ("2130706433", ""),
        ("0177.0.0.1", ""),
        ("0x7f.1", ""),
        ("[::ffff:127.0.0.1]", ""),
        ("0.0.0.0", "0.0.0.0/0, ::/0"),  # would dial the canary on loopback
        ("169.254.169.254", "0.0.0.0/0, ::/0"),
        ("[::1]", ""),
        ("localhost", ""),
    ],
)
def test_no_spelling_of_a_private_address_gets_through(
    make: Any, canary: Canary, host: str, allow: str
) -> None:
    app = make(PRIVATE_NETWORK_ALLOW=allow)
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"http://127.0.0.1:{canary.port}/base")
    # Set on the row, past the settings' own check (which refuses 0.0.0.0 and link-local
    # when saved): what is tested here is the guard of the call itself, as for a URL saved
    # before that check or a name that resolves there only later.
    saved = session.scalars(sa.select(Integration).where(Integration.key == "svc")).one()
    saved.base_url = f"http://{host}:{canary.port}/base"
    session.commit()
    outcome = run(app, facility, user, {"path": "/x"})
    assert outcome.error is not None and outcome.error.code == "forbidden_destination"
    assert canary.arrivals == []


def test_an_allowed_address_is_allowed_in_every_spelling(make: Any, canary: Canary) -> None:
    app = make(PRIVATE_NETWORK_ALLOW=f"127.0.0.1/32:{canary.port}")
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"http://2130706433:{canary.port}/base")
    outcome = run(app, facility, user, {"path": "/x"})
    assert outcome.ok and outcome.result["status"] == 200


def _integration_with_the_old_flag(url: str, base_url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO facilities (id, name, slug, created_at) "
                "VALUES (1, 'Lab', 'lab', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO integrations (facility_id, key, name, auth_mode, base_url, "
                "token_request_method, token_auth_method, scopes, scope_separator, pkce, "
                "authorization_params, placements, credential_fields, parameters, "
                "default_headers, default_query, allowed_hosts, allow_private_network, "
                "refresh_on_403, created_at, updated_at) VALUES (1, 'nas', 'NAS', 'none', "
                ":base, 'POST', 'client_secret_post', '[]', ' ', 1, '{}', '[]', '[]', '[]', "
                "'{}', '{}', '[]', 1, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"base": base_url},
        )
    engine.dispose()


@pytest.mark.parametrize(("allow", "covered"), [("", False), ("127.0.0.1/32:8443", True)])
def test_the_migration_says_which_integrations_the_operators_list_leaves_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, allow: str, covered: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    config = alembic_config(url)
    command.upgrade(config, "0001")
    _integration_with_the_old_flag(url, "http://127.0.0.1:8443/api")
    config.attributes["private_network_allow"] = parse_network_allow(allow)
    with caplog.at_level(logging.INFO, logger="scriptbox.migrations"):
        command.upgrade(config, "0004")
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if "'nas'" in r.getMessage()]
    if covered:
        assert messages == [
            ("INFO", "integration 'nas' of facility 'lab' keeps working: 127.0.0.1:8443 is allowed")
        ]
    else:
        assert len(messages) == 1 and messages[0][0] == "WARNING"
        assert "does not cover 127.0.0.1 port 8443" in messages[0][1]
        assert "adds 127.0.0.1/32:8443" in messages[0][1]
    columns = [c["name"] for c in sa.inspect(sa.create_engine(url)).get_columns("integrations")]
    assert "allow_private_network" not in columns


def test_network_entries_cover_only_their_network_and_ports() -> None:
    (rule,) = parse_network_allow("10.0.0.0/8:80-81")
    assert rule.covers(ipaddress.ip_address("10.2.3.4"), 81)
    assert not rule.covers(ipaddress.ip_address("10.2.3.4"), 82)
    assert not rule.covers(ipaddress.ip_address("11.0.0.1"), 80)
    assert not rule.covers(ipaddress.ip_address("::1"), 80)
    assert rule == NetworkAllow(ipaddress.ip_network("10.0.0.0/8"), (80, 81))


@pytest.mark.parametrize(
    "value", ["169.254.169.254/32", "10.0.0.0/8, [fe80::/64]:80", "0.0.0.0/32", "fd00:ec2::254"]
)
def test_never_reachable_addresses_cannot_be_allowed(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="never reachable"):
        make_app(tmp_path, PRIVATE_NETWORK_ALLOW=value)


@pytest.mark.parametrize("address", ["192.0.0.8", "fec0::1", "198.18.0.1", "240.0.0.1"])
def test_a_special_purpose_address_is_refused_before_anything_is_sent(
    make: Any, canary: Canary, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    # No such host exists on the test machine, so each dial the guard lets through is routed
    # to the loopback canary (as a network where that address answers would): had the guard
    # let it through, the canary would hear the credential.
    real_connect = transport.urllib3_connection.create_connection

    def to_the_canary(_: Any, *args: Any, **kwargs: Any) -> Any:
        return real_connect(("127.0.0.1", canary.port), *args, **kwargs)

    monkeypatch.setattr(transport.urllib3_connection, "create_connection", to_the_canary)
    app = make(PRIVATE_NETWORK_ALLOW=f"127.0.0.1/32:{canary.port}")
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"http://127.0.0.1:{canary.port}/base")
    host = f"[{address}]" if ":" in address else address
    saved = session.scalars(sa.select(Integration).where(Integration.key == "svc")).one()
    saved.base_url = f"http://{host}:{canary.port}/base"
    session.commit()
    outcome = run(app, facility, user, {"path": "/x"})
    assert outcome.error is not None and outcome.error.code == "forbidden_destination"
    assert outcome.error.message == (
        f"{address} resolves to {address}, which the server may not reach; private networks "
        "are allowed only by the server operator (SCRIPTBOX_PRIVATE_NETWORK_ALLOW), "
        "link-local and metadata addresses never"
    )
    assert canary.arrivals == []
