"""`almanac serve [--host 127.0.0.1] [--port 8000]`: the REST API under uvicorn.

Without API keys every request is allowed, so the server then refuses any address but loopback. SIGTERM or
Ctrl-C drains: uvicorn stops accepting, lets in-flight requests (streams included) finish for up to
DRAIN_SECONDS, then the app stops its job runner between items.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
from types import FrameType

import uvicorn

from almanac.cli.command_parser import CommandParser, examples
from almanac.core.catalog import Catalog
from almanac.core.errors import ConfigError
from almanac.core.settings import Settings

log = logging.getLogger(__name__)
DRAIN_SECONDS = 30


class DrainingServer(uvicorn.Server):
    """uvicorn, except that a SIGTERM/SIGINT that drained the server ends with exit status 0: uvicorn
    re-raises the signal once shut down, so `make run` and supervisors would report a clean stop as a crash.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start; given our bound socket, it would not say where it listens, so say it here."""
        await super().startup(sockets)
        if sockets and not self.should_exit:
            self._log_started_message(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start the graceful shutdown (a second Ctrl-C forces it), without re-raising the signal later."""
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def register(sub: argparse._SubParsersAction[CommandParser]) -> None:
    """Add the `serve` command."""
    p = sub.add_parser(
        "serve",
        help="serve the REST API (and the OpenAI-compatible API)",
        description="Serve the REST API until SIGTERM or Ctrl-C, which let in-flight requests finish.\n"
        "While no API key exists, only loopback addresses may be bound.",
        epilog=examples(
            "almanac serve", "almanac serve --host 0.0.0.0 --port 8080  # needs an API key first"
        ),
    )
    p.add_argument("--host", help="address to bind (default: ALMANAC_SERVER__HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default: ALMANAC_SERVER__PORT, 8000)")
    p.set_defaults(func=cmd_serve)


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address (127.0.0.0/8, ::1).

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_loopback("::1")
    (True, False, True)
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_bind(host: str, has_keys: bool) -> None:
    """Refuse a non-loopback address while no API key exists (every request would be allowed)."""
    if not has_keys and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host}: no API key exists, so anyone who can reach the port could use it; "
            "create a key with `almanac keys create --scope admin` first, or serve on 127.0.0.1"
        )


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Build the app and run uvicorn until SIGTERM/SIGINT."""
    from almanac.server.app import create_app
    from almanac.server.keys.key_store import KeyStore

    host = args.host or settings.server.host
    port = args.port or settings.server.port
    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url)
    try:
        check_bind(host, KeyStore(catalog).has_keys())
    finally:
        catalog.close()
    sock = bind_socket(host, port)  # before the app exists: its start requeues the jobs it finds running
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=DRAIN_SECONDS,
        server_header=False,
        log_level="info",  # uvicorn's own lines: where it listens, shutdown and drain progress
        # --log-format json: no uvicorn handlers, so its lines reach the root's JSON formatter too
        log_config=None if getattr(args, "log_format", "text") == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=logging.getLogger().level <= logging.DEBUG,
    )
    try:
        DrainingServer(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening address, bound now: a port in use (say by a running server) is one clear error before
    anything is started or changed, never a requeue of the live server's running job."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise ConfigError(f"cannot resolve --host {host}: {exc}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: allows TIME_WAIT, not a listener
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"port {port} on {host} is in use ({exc.strerror}); is another `almanac serve` running? "
            "stop it or pick another port with --port"
        ) from exc
    sock.set_inheritable(True)
    return sock
