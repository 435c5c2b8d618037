"""What the scheduler loop does besides training: fire due schedules and send webhooks.

Both are store-driven and safe with several processes: a due run is claimed in the store before it is launched
(``engine.services.schedules``), and a webhook delivery is claimed before it is sent (``engine.store.webhooks``).
The HTTP requests run on a background thread with a short timeout, so a slow or dead receiver never holds up
dispatching sub-epochs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

from hopper.engine.cron import utcnow
from hopper.engine.entities import WebhookDeliveryInfo
from hopper.engine.errors import HopperError
from hopper.engine.services import Services

log = logging.getLogger("hopper.mop_scheduler.chores")


def post_json(url: str, body: dict, *, timeout: float, headers: dict[str, str] | None = None) -> None:
    """POST ``body`` as JSON; raise ``OSError`` (with the status or the network error) unless it answers 2xx."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "hopper-webhook/1", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own URL
            response.read(4096)
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"cannot reach the webhook: {exc.reason}") from None


class ScheduledChores:
    """Fires due schedules and delivers webhooks, at most every ``interval`` seconds of the scheduler's loop.

    Args:
        services: services on the store.
        interval: seconds between looks at the store (schedules are minute-grained; webhooks can wait that long).
        timeout: seconds one webhook request may take.
        max_attempts: attempts before a delivery is given up (status ``failed``, the last error kept).
        backoff: seconds before the first retry; doubled after each failed attempt, up to ``max_backoff``.
    """

    def __init__(self, services: Services, *, interval: float = 2.0, timeout: float = 10.0, max_attempts: int = 8,
                 backoff: float = 5.0, max_backoff: float = 3600.0) -> None:
        self.services = services
        self.store = services.store
        self.interval = interval
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._last = float("-inf")
        self._sender: threading.Thread | None = None

    def tick(self) -> None:
        """Between scheduler steps: fire due runs, queue webhooks of ended workloads, send due ones (in the
        background). Nothing here is fatal to the loop: a failure (a store outage included, which the loop's own
        store calls meet and back off from) is logged and tried again ``interval`` seconds later."""
        if time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        try:
            self.services.fire_due_schedules()
            self.store.webhooks.enqueue_ended()
        except HopperError as exc:
            log.warning("scheduled chores failed this time (%s); trying again in %.0f s", exc.message, self.interval)
            return
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._send_in_background, name="hopper-webhooks", daemon=True)
            self._sender.start()

    def _send_in_background(self) -> None:
        try:
            self.deliver_due()
        except HopperError as exc:  # the store went away mid-round: the claims run out and the next round retries
            log.warning("webhook deliveries interrupted (%s)", exc.message)

    def deliver_due(self) -> list[WebhookDeliveryInfo]:
        """Claim and send every due delivery once; returns them as recorded after the attempt."""
        out = []
        # Held past the request's timeout, so no other notifier sends it while this one waits for an answer.
        for delivery in self.store.webhooks.claim_due(utcnow(), hold_seconds=self.timeout + 30):
            out.append(self._attempt(delivery))
        return out

    def _attempt(self, delivery: WebhookDeliveryInfo) -> WebhookDeliveryInfo:
        body = {**delivery.payload, "delivery_id": delivery.id, "attempt": delivery.attempts}
        try:
            post_json(delivery.url, body, timeout=self.timeout,
                      headers={"X-Hopper-Delivery": str(delivery.id), "X-Hopper-Event": delivery.payload["event"]})
        except OSError as exc:
            error = str(exc) or type(exc).__name__
            if delivery.attempts >= self.max_attempts:
                log.error("webhook for workload %d given up after %d attempts: %s", delivery.workload_id,
                          delivery.attempts, error)
                return self.store.webhooks.record_attempt(delivery.id, error=error, retry_at=None)
            wait = min(self.backoff * 2 ** (delivery.attempts - 1), self.max_backoff)
            log.warning("webhook for workload %d failed (attempt %d: %s); retrying in %.1f s", delivery.workload_id,
                        delivery.attempts, error, wait)
            return self.store.webhooks.record_attempt(delivery.id, error=error,
                                                      retry_at=utcnow() + timedelta(seconds=wait))
        log.info("webhook for workload %d delivered (%s)", delivery.workload_id, delivery.payload["event"])
        return self.store.webhooks.record_attempt(delivery.id, error=None, retry_at=None)

    def close(self) -> None:
        """On the scheduler's exit: queue what ended last and send what is due, for at most about one request
        timeout (so `hopper run --until-done` reports its own workloads); whatever is left waits in the outbox,
        its claim running out, for the next scheduler."""
        deadline = time.monotonic() + self.timeout + 1
        if self._sender is not None:
            self._sender.join(timeout=self.timeout + 1)
        try:
            self.store.webhooks.enqueue_ended()
        except HopperError as exc:
            log.warning("webhooks not queued at exit (%s); the next scheduler queues them", exc.message)
            return
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._send_in_background, name="hopper-webhooks", daemon=True)
            self._sender.start()
        self._sender.join(timeout=max(0.0, deadline - time.monotonic()))
