"""A time-bounded client of nova-conductor's object_class_action_versions.

oslo.messaging's first ``call()`` blocks forever when the broker cannot be
reached, whatever its timeout says (OSLO-NOTES). So every call is preceded
by a bounded connection check, runs in a daemon thread with a deadline, and
every failure becomes an InventoryError that names the transport host and
what failed. The transport is created on first use, so that a daemon makes
it in its worker process, after the fork.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata

import amqp.exceptions
import kombu
import kombu.exceptions
import oslo_messaging
from oslo_config import cfg

from cachemgr.exceptions import (
    ConfigError,
    InventoryUnavailable,
    InventoryUntrustworthy,
)

__all__ = ["ConductorClient", "check_transport_url"]

LOG = logging.getLogger(__name__)

RPC_VERSION = "3.0"
_DRIVER_GROUP = "oslo.messaging.drivers"
METHOD = "object_class_action_versions"
# The remote errors that mean the answer, not the bus, is wrong.
_UNTRUSTWORTHY_REMOTE = frozenset({"MarkerNotFound", "IncompatibleObjectVersion"})
# Beyond the call timeout, how long a call may take before it is abandoned.
_DEADLINE_GRACE_SECONDS = 5.0


def check_transport_url(conf: cfg.ConfigOpts) -> None:
    """Refuse a transport_url oslo.messaging could not use, before any pass.

    Raises:
        ConfigError: the URL does not parse or names no installed driver.
    """
    try:
        url = oslo_messaging.TransportURL.parse(conf)
    except (oslo_messaging.InvalidTransportURL, ValueError) as exc:
        raise ConfigError(f"[DEFAULT] transport_url: {exc}") from exc
    drivers = {e.name for e in metadata.entry_points(group=_DRIVER_GROUP)}
    if url.transport not in drivers:
        raise ConfigError(
            f"[DEFAULT] transport_url: no oslo.messaging driver for "
            f"{url.transport!r}:// (installed: {', '.join(sorted(drivers))})"
        )


class ConductorClient:
    """Calls nova-conductor the way nova-compute's ConductorAPI does."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        *,
        exchange: str,
        topic: str,
        call_timeout_seconds: int,
        connect_timeout_seconds: int,
    ) -> None:
        self._conf = conf
        self._exchange = exchange
        self._topic = topic
        self._call_timeout = call_timeout_seconds
        self._connect_timeout = connect_timeout_seconds
        self._transport: oslo_messaging.Transport | None = None
        self._client: oslo_messaging.RPCClient | None = None

    def check_broker(self) -> None:
        """Connect to the broker once, within the connect timeout.

        Raises:
            InventoryUnavailable: no broker host of the transport_url answers.
        """
        self._ensure_client()
        url = oslo_messaging.TransportURL.parse(self._conf)
        if url.transport not in ("rabbit", "amqp", "kombu"):
            return
        failures = []
        for host in url.hosts or [None]:
            connection = kombu.Connection(
                hostname=host.hostname if host else "localhost",
                port=host.port if host and host.port else 5672,
                userid=host.username if host else None,
                password=host.password if host else None,
                virtual_host=url.virtual_host or "/",
                connect_timeout=self._connect_timeout,
                ssl=self._ssl_options(),
            )
            try:
                connection.connect()
                return
            except (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed) as exc:
                # The broker answered and said no: another host of the same
                # cluster has the same users and vhosts.
                raise self._refused(exc, host) from exc
            except (OSError, kombu.exceptions.KombuError) as exc:
                failures.append(f"{self._describe_host(host)}: {_reason(exc)}")
            finally:
                connection.release()
        raise InventoryUnavailable(
            "cannot reach the message bus ([DEFAULT] transport_url) within "
            f"{self._connect_timeout}s: " + "; ".join(failures)
        )

    def call(
        self,
        objname: str,
        objmethod: str,
        object_versions: Mapping[str, str],
        args: Sequence[object],
        kwargs: Mapping[str, object],
    ) -> object:
        """One remotable classmethod call; the reply primitive.

        Raises:
            InventoryUnavailable: the bus or the conductor failed to answer.
            InventoryUntrustworthy: the conductor rejected what we asked
                (unknown marker, incompatible object version).
        """
        client = self._ensure_client()
        what = f"{objname}.{objmethod}"
        context = _admin_context()
        prepared = client.prepare(timeout=self._call_timeout, retry=1)
        LOG.debug("Asking nova-conductor %s (request %s)", what, context["request_id"])

        def send() -> object:
            return prepared.call(
                context,
                METHOD,
                objname=objname,
                objmethod=objmethod,
                object_versions=dict(object_versions),
                args=list(args),
                kwargs=dict(kwargs),
            )

        try:
            return _with_deadline(
                send, self._call_timeout + _DEADLINE_GRACE_SECONDS, what
            )
        except oslo_messaging.MessagingTimeout as exc:
            raise InventoryUnavailable(
                f"nova-conductor did not answer {what} within {self._call_timeout}s "
                f"(exchange {self._exchange}, topic {self._topic}, request "
                f"{context['request_id']}): is nova-conductor running on this "
                "transport_url?"
            ) from exc
        except oslo_messaging.RemoteError as exc:
            raise _remote_error(what, exc.exc_type, exc.value, context) from exc
        except (
            oslo_messaging.MessagingException,
            kombu.exceptions.KombuError,
            OSError,
        ) as exc:
            if _ACCESS_REFUSED in str(exc):
                hosts = oslo_messaging.TransportURL.parse(self._conf).hosts
                raise self._refused(exc, hosts[0] if hosts else None) from exc
            raise InventoryUnavailable(
                f"the message bus failed during {what}: {_reason(exc)}"
            ) from exc
        except Exception as exc:
            # A builtin exception raised in the conductor (a nova bug) comes
            # back as itself, its remote traceback in the message.
            raise InventoryUnavailable(
                f"{what} failed: {_reason(exc)} (request {context['request_id']})"
            ) from exc

    def close(self) -> None:
        """Release the transport (its connections and reply queue)."""
        if self._transport is not None:
            self._transport.cleanup()
        self._transport = None
        self._client = None

    def _ensure_client(self) -> oslo_messaging.RPCClient:
        if self._client is None:
            self._transport = oslo_messaging.get_rpc_transport(self._conf)
            target = oslo_messaging.Target(
                exchange=self._exchange, topic=self._topic, version=RPC_VERSION
            )
            self._client = oslo_messaging.get_rpc_client(self._transport, target)
        return self._client

    def _ssl_options(self) -> dict[str, str] | bool:
        """kombu's ssl argument from [oslo_messaging_rabbit], as the driver does."""
        group = getattr(self._conf, "oslo_messaging_rabbit", None)
        if group is None or not group.ssl:
            return False
        options = {
            "ca_certs": group.ssl_ca_file,
            "certfile": group.ssl_cert_file,
            "keyfile": group.ssl_key_file,
        }
        return {key: value for key, value in options.items() if value} or True

    def _describe_host(self, host: oslo_messaging.TransportHost | None) -> str:
        if host is None:
            return "localhost:5672"
        user = f"{host.username}@" if host.username else ""
        return f"{user}{host.hostname}:{host.port or 5672}"

    def _refused(
        self, exc: Exception, host: oslo_messaging.TransportHost | None
    ) -> InventoryUnavailable:
        """The broker refused ``host``'s user: the error naming what to check."""
        url = oslo_messaging.TransportURL.parse(self._conf)
        # user@host:port/vhost: the transport_url without its password.
        where = f"{self._describe_host(host)}/{url.virtual_host or ''}"
        user = host.username if host and host.username else "guest"
        return InventoryUnavailable(
            _refusal(str(exc), where, user, url.virtual_host or "/", self._exchange)
        )


_ACCESS_REFUSED = "ACCESS_REFUSED"
# The broker's own words in an AMQP error: "(403) ACCESS_REFUSED - ...".
_BROKER_WORDS = re.compile(r"\(\d{3}\) [A-Z_]+ - .*")


def _refusal(reason: str, where: str, user: str, vhost: str, exchange: str) -> str:
    """The broker's refusal in words an operator acts on: what to check.

    RabbitMQ says ACCESS_REFUSED at login for a wrong user or password, and
    on an exchange or queue the user's permissions do not cover; NOT_ALLOWED
    for a vhost that does not exist or that the user has no permissions on.
    """
    words = _BROKER_WORDS.search(reason)
    detail = words.group(0) if words else reason.strip()
    if "Login was refused" in reason:
        check = (
            "check the user name and password in transport_url (as in nova.conf) "
            f"and that user {user!r} exists: rabbitmqctl list_users"
        )
    elif "not found" in reason and _ACCESS_REFUSED not in reason:
        check = (
            f"check the vhost at the end of transport_url: vhost {vhost!r} does "
            "not exist on this broker (rabbitmqctl list_vhosts)"
        )
    else:
        pattern = f"'^({exchange}|reply_.*)$'"
        check = (
            f"check the permissions of user {user!r} on vhost {vhost!r} (README, "
            f"RabbitMQ permissions): rabbitmqctl set_permissions -p {vhost} "
            f"{user} {pattern} {pattern} '^reply_.*$'"
        )
    return f"the message bus refused [DEFAULT] transport_url {where}: {detail}; {check}"


def _remote_error(
    what: str, exc_type: str | None, value: object, context: Mapping[str, object]
) -> InventoryUnavailable | InventoryUntrustworthy:
    """The error for an exception raised in nova-conductor."""
    error = InventoryUntrustworthy
    if exc_type not in _UNTRUSTWORTHY_REMOTE:
        error = InventoryUnavailable
    detail = str(value).strip().splitlines()[0] if str(value).strip() else ""
    return error(
        f"nova-conductor answered {what} with {exc_type}: {detail} "
        f"(request {context['request_id']})"
    )


def _admin_context() -> dict[str, object]:
    """A nova RequestContext dict: admin is all the conductor checks."""
    return {
        "is_admin": True,
        "read_deleted": "no",
        "roles": [],
        "request_id": f"req-{uuid.uuid4()}",
        "timestamp": datetime.datetime.now(datetime.UTC)
        .replace(tzinfo=None)
        .isoformat(),
        "user_identity": "- - - - -",
    }


def _with_deadline(fn: Callable[[], object], seconds: float, what: str) -> object:
    """Run ``fn`` in a daemon thread; give up on it after ``seconds``."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = fn()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"conductor {what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise InventoryUnavailable(
            f"the call {what} did not return within {seconds:.0f}s; the message "
            "bus may have gone away"
        )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]


def _reason(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
