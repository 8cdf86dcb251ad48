"""The audit log: one line per admin action on the `almanac.audit` logger, for whoever keeps such records.

    audit("key_created", "local", prefix="alm_3f2c", scope="admin", collection=None)
    # almanac.audit: event=key_created actor=local request_id=- prefix=alm_3f2c scope=admin collection=None

Actions: keys created or revoked (prefix and scope, never the secret), adapters promoted or rolled back,
documents deleted, jobs cancelled. `actor` is the acting API key's prefix, "anonymous" for a server without
keys, or "local" for the command line; the request id links the line to the request's other log lines.
"""

from __future__ import annotations

import logging

from almanac.core.log_format import current_request_id

log = logging.getLogger("almanac.audit")


def audit(event: str, actor: str, **fields: object) -> None:
    """Log one admin action (INFO, so it shows with `-v`; route the logger to keep it always)."""
    details = "".join(f" {key}={value}" for key, value in fields.items())
    log.info("event=%s actor=%s request_id=%s%s", event, actor, current_request_id() or "-", details)
