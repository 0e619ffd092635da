"""TLS: the ``ssl.SSLContext`` built from gunicorn's SSL settings and its ``ssl_context`` hook.

As in gunicorn 21+, the ``ssl_context(config, default_ssl_context_factory)`` hook decides; the
factory it is handed builds the context from --certfile, --keyfile, --ca-certs, --cert-reqs and
--ciphers, so a hook can adjust that context (``minimum_version``, ALPN...) or return its own.

``check_tls`` runs the same build in the master before any worker forks: a missing or unreadable
certificate ends the server at startup with one line, instead of every worker failing to boot.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from unicorn_aio.errors import ConfigError

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config


def default_ssl_context(cfg: Config) -> ssl.SSLContext:
    """The context the SSL settings describe (gunicorn's ``default_ssl_context_factory``)."""
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cfg.ca_certs)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ca_certs {cfg.ca_certs!r} cannot be loaded: {_why(exc)}") from None
    try:
        context.load_cert_chain(certfile=cfg.certfile, keyfile=cfg.keyfile)
    except (OSError, ssl.SSLError) as exc:
        files = f"certfile {cfg.certfile!r}" + (f" / keyfile {cfg.keyfile!r}" if cfg.keyfile else "")
        raise ConfigError(f"TLS {files} cannot be loaded: {_why(exc)}") from None
    context.verify_mode = ssl.VerifyMode(cfg.cert_reqs)
    if cfg.ciphers:
        try:
            context.set_ciphers(cfg.ciphers)
        except ssl.SSLError:
            raise ConfigError(f"ciphers {cfg.ciphers!r}: no cipher can be selected "
                              "(see `openssl ciphers` for the syntax)") from None
    return context


def ssl_context(cfg: Config) -> ssl.SSLContext:
    """The server's context: whatever the ``ssl_context`` hook returns."""
    if not cfg.certfile:
        raise ConfigError("TLS needs certfile (the key may be in it, or in keyfile)")
    if cfg.cert_reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
        raise ConfigError(f"cert_reqs must be 0 (none), 1 (optional) or 2 (required), "
                          f"got {cfg.cert_reqs}")
    context = cfg.ssl_context(cfg, lambda: default_ssl_context(cfg))
    if not isinstance(context, ssl.SSLContext):
        raise ConfigError(f"the ssl_context hook returned {type(context).__name__}, "
                          "not an ssl.SSLContext")
    if "h2" in cfg.http_protocols:
        # ALPN (RFC 7301) offers --http-protocols in their order; a hook's own choice stays.
        from unicorn_aio.http2.negotiate import alpn_protocols
        context.set_alpn_protocols(alpn_protocols(cfg))
    return context


def check_tls(cfg: Config) -> None:
    """Build the context once in the master, so a bad certificate stops the server at startup."""
    if cfg.is_ssl:
        ssl_context(cfg)


def _why(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.library or 'SSL'}: {exc.reason}"  # e.g. PEM: NO_START_LINE (not a PEM file)
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
