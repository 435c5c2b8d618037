"""Encoded bodies of the heaviest polled reads (a workload's config list and schedule log), kept per server process.

Each body is kept under the request that asked for it (path and query) together with the workload's content
revision (``Services.content_revision``: about a millisecond of SQL that changes whenever any config or sub-epoch
row the read shows changes), and served again while the revision is the same. So a read never shows older rows
than the store holds: it is a cache of the encoding, not of the data. Twenty dashboards polling a workload of
1 000 configs then cost one revision query each instead of loading, converting and encoding 1 000 rows
(measured by ``bench/api_vs_optuna_dashboard.py``). ``max_age`` bounds how long an entry lives regardless,
against a revision that fails to move (a clock stepping back under ``updated_at``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from flask import current_app, jsonify, request

#: Bodies kept per process: each holds one page (a 1 000-config page is about 0.5 MB).
DEFAULT_ENTRIES = 32
#: Seconds an entry is served at most, even when its revision still matches.
DEFAULT_MAX_AGE_S = 30.0


class ReadCache:
    """A small LRU of encoded JSON bodies keyed by request and content revision (thread-safe)."""

    def __init__(self, entries: int = DEFAULT_ENTRIES, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self.entries = entries
        self.max_age_s = max_age_s
        self._bodies: OrderedDict[Hashable, tuple[Hashable, float, bytes, str]] = OrderedDict()
        # (key, revision) -> the build under way and its outcome: readers that arrive meanwhile wait for it
        self._building: dict[tuple[Hashable, Hashable], _Build] = {}
        self._lock = threading.Lock()
        #: reads served from a kept body, reads that built theirs, and reads that waited for another's build
        self.hits = 0
        self.misses = 0
        self.shared = 0

    def _build(self, key: Hashable, revision: Hashable, now: float, build: Callable[[], Any],
               under_way: _Build) -> tuple[bytes, str]:
        try:
            body = jsonify(build()).get_data()
        except BaseException as exc:
            with self._lock:
                self._building.pop((key, revision), None)
            under_way.finish(None, exc)
            raise
        etag = hashlib.sha1(body, usedforsecurity=False).hexdigest()
        with self._lock:
            self._building.pop((key, revision), None)
            self.misses += 1
            self._bodies[key] = (revision, now, body, etag)
            self._bodies.move_to_end(key)
            while len(self._bodies) > self.entries:
                self._bodies.popitem(last=False)
        under_way.finish((body, etag), None)
        return body, etag

    def response(self, revision: Hashable, build: Callable[[], Any]) -> Any:
        """The request's JSON response: the kept body if its revision is ``revision``, else ``build()`` encoded
        (and kept). ETag and ``If-None-Match`` work as on every other read (a 304 while nothing changed)."""
        key = (request.path, tuple(sorted(request.args.items(multi=True))))
        now = time.monotonic()
        with self._lock:
            kept = self._bodies.get(key)
            fresh = kept is not None and kept[0] == revision and now - kept[1] < self.max_age_s
            if fresh:
                self._bodies.move_to_end(key)
                self.hits += 1
            else:
                under_way = self._building.get((key, revision))
                if under_way is None:
                    under_way = self._building[(key, revision)] = _Build()
                    mine = True
                else:
                    mine = False
                    self.shared += 1
        if fresh:
            body, etag = kept[2], kept[3]
        elif mine:
            body, etag = self._build(key, revision, now, build, under_way)
        else:
            # Another request is encoding this very revision: one build serves both (after a commit, every poller
            # of the workload misses at once; each building its own copy made them queue behind each other).
            body, etag = under_way.wait(self.max_age_s)
        response = current_app.response_class(body, mimetype="application/json")
        response.set_etag(etag, weak=True)
        return response.make_conditional(request)


class _Build:
    """One body being encoded; ``wait`` returns it (or raises what the build raised)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.result: tuple[bytes, str] | None = None
        self.error: BaseException | None = None

    def finish(self, result: tuple[bytes, str] | None, error: BaseException | None) -> None:
        """Hand the body and its ETag (or what the build raised) to every reader waiting for it."""
        self.result, self.error = result, error
        self._done.set()

    def wait(self, timeout: float) -> tuple[bytes, str]:
        """The body and ETag the build made; raises what it raised, or ``TimeoutError`` after ``timeout`` s."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"a shared read took over {timeout:g} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def read_cache() -> ReadCache:
    """The app's read cache (made on first use)."""
    return current_app.extensions.setdefault("hopper_read_cache", ReadCache())
