"""The ``Hub-Receipt`` header on every push answered 1000 (hub/infra/receipts.py).

Called once by the middleware after the request's record was committed: the record's
position and leaf hash come from the recording of its ``Request.Answered`` event.
A real-time relay, recorded after it was answered, carries no receipt.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import falcon

from hub.infra.chain import event_digest
from hub.infra.merkle import leaf_hash, leaf_input
from hub.infra.receipts import HEADER, Receipt, make_receipt
from hub.infra.tlog import enabled as tlog_enabled
from hub.ocpi.envelope import format_datetime

log = logging.getLogger(__name__)
PUSH_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})
_enabled = tlog_enabled()


def attach_receipt(ctx, req: falcon.Request, resp: falcon.Response) -> None:
    if not _enabled:
        return
    if req.method not in PUSH_METHODS or not isinstance(resp.media, dict) or resp.media.get("status_code") != 1000:
        return
    recordings = getattr(getattr(req.context, "uow", None), "recordings", None) or ()
    record = next((r.notification for r in recordings if r.notification.topic.endswith(":Request.Answered")), None)
    if record is None:
        return
    try:
        signer = ctx.__dict__.get("_audit_signer")  # loaded once per web context
        if signer is None:
            signer = ctx.__dict__["_audit_signer"] = ctx.settings.audit_signer()
        digest = event_digest(record.originator_id, record.originator_version, record.topic, record.state)
        receipt = Receipt(ctx.settings.log_origin, record.id, leaf_hash(leaf_input(record.id, digest)),
                          format_datetime(datetime.now(UTC)))
        resp.set_header(HEADER, make_receipt(signer, receipt))
    except Exception:  # the push is stored and answered; a missing receipt must not undo that
        log.exception("could not sign the receipt of %s %s", req.method, req.path)
