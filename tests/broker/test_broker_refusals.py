"""A broker that refuses cachemgr: what the operator sees from ``--once``.

Wrong credentials, a vhost that does not exist and a user without
permissions on the vhost are refusals (exit 1, status outcome ``refused``)
naming ``[DEFAULT] transport_url`` as user@host:port/vhost and what to
check, never the password, never a traceback; nothing is removed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import rabbit
from tests.support.daemons import Daemon
from tests.support.hosts import DAY, Host, Run, fingerprint

pytestmark = pytest.mark.broker

PASSWORD = "wr0ng-s3cret"


def refused_run(tmp_path: Path, url: str) -> tuple[Host, Run]:
    """``cachemgr --once`` on a host with an old unused file, against ``url``."""
    host = Host(tmp_path, name="compute-01")
    host.cache_file(fingerprint("retired-image"), age=10 * DAY)
    host.write(
        {
            "DEFAULT": {"transport_url": url},
            "inventory": {"driver": "nova", "static_path": None},
            "daemon": {"status_file": tmp_path / "status.json"},
        },
        inventory=False,
    )
    before = host.cache_names()
    run = host.run()
    assert run.returncode == 1, run.output
    assert host.cache_names() == before
    assert "Traceback" not in run.output, run.output
    assert PASSWORD not in run.output, run.output
    return host, run


def refusal(run: Run) -> str:
    """The refusal line of a refused pass (oslo.messaging may log its own)."""
    refused = "Image cache pass refused, nothing was removed: "
    errors = [line for line in run.lines("ERROR") if refused in line]
    assert len(errors) == 1, run.output
    return errors[0]


@pytest.fixture
def user_without_permissions(broker_vhost: str) -> Iterator[str]:
    """A RabbitMQ user that exists but has no permissions on the vhost."""
    name = f"cachemgr-test-{uuid.uuid4().hex[:8]}"
    rabbit.rabbitmqctl("add_user", name, PASSWORD)
    try:
        yield name
    finally:
        rabbit.rabbitmqctl("delete_user", name)


def test_wrong_password(tmp_path: Path, broker_vhost: str) -> None:
    """A wrong password: the login refusal, the user and where to look."""
    url = f"rabbit://guest:{PASSWORD}@{rabbit.BROKER}/{broker_vhost}"

    line = refusal(refused_run(tmp_path, url)[1])

    assert (
        f"the message bus refused [DEFAULT] transport_url "
        f"guest@{rabbit.BROKER}/{broker_vhost}: (403) ACCESS_REFUSED - Login was "
        "refused" in line
    ), line
    assert "check the user name and password in transport_url" in line, line
    assert "rabbitmqctl list_users" in line, line


def test_daemon_records_the_refusal(tmp_path: Path, broker_vhost: str) -> None:
    """The daemon's status file says ``refused`` with the same words."""
    url = f"rabbit://guest:{PASSWORD}@{rabbit.BROKER}/{broker_vhost}"
    host, _ = refused_run(tmp_path, url)

    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        daemon.wait_for("Image cache pass refused")
        assert daemon.stop() == 0, daemon.output

    status = json.loads((tmp_path / "status.json").read_text())
    assert status["last_pass"]["outcome"] == "refused", status
    assert "refused [DEFAULT] transport_url guest@" in status["last_pass"]["error"]
    assert PASSWORD not in json.dumps(status) + daemon.output
    assert "Traceback" not in daemon.output, daemon.output


def test_missing_vhost(tmp_path: Path, broker_vhost: str) -> None:
    """A vhost the broker does not have: named, with how to list them."""
    url = f"rabbit://guest:guest@{rabbit.BROKER}/{broker_vhost}-missing"

    line = refusal(refused_run(tmp_path, url)[1])

    assert (
        f"transport_url guest@{rabbit.BROKER}/{broker_vhost}-missing: (530) "
        f"NOT_ALLOWED - vhost {broker_vhost}-missing not found" in line
    ), line
    assert f"vhost '{broker_vhost}-missing' does not exist" in line, line
    assert "rabbitmqctl list_vhosts" in line, line


def test_user_without_permissions_on_the_vhost(
    tmp_path: Path, broker_vhost: str, user_without_permissions: str
) -> None:
    """A user with no permissions on the vhost: the command that grants them."""
    user = user_without_permissions
    url = f"rabbit://{user}:{PASSWORD}@{rabbit.BROKER}/{broker_vhost}"

    line = refusal(refused_run(tmp_path, url)[1])

    assert f"transport_url {user}@{rabbit.BROKER}/{broker_vhost}: (530)" in line
    assert f"access to vhost '{broker_vhost}' refused for user '{user}'" in line
    assert (
        f"rabbitmqctl set_permissions -p {broker_vhost} {user} "
        "'^(nova|reply_.*)$' '^(nova|reply_.*)$' '^reply_.*$'" in line
    ), line


def test_permissions_missing_the_conductor_exchange(
    tmp_path: Path, broker_vhost: str, user_without_permissions: str
) -> None:
    """Permissions that leave out the ``nova`` exchange: refused on the call."""
    user = user_without_permissions
    reply = "^reply_.*$"
    rabbit.rabbitmqctl("set_permissions", "-p", broker_vhost, user, reply, reply, reply)
    url = f"rabbit://{user}:{PASSWORD}@{rabbit.BROKER}/{broker_vhost}"

    line = refusal(refused_run(tmp_path, url)[1])

    assert f"transport_url {user}@{rabbit.BROKER}/{broker_vhost}: (403)" in line
    assert f"access to exchange 'nova' in vhost '{broker_vhost}' refused" in line
    assert f"rabbitmqctl set_permissions -p {broker_vhost} {user} " in line, line
