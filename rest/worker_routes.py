"""REST resources of the worker pool: list the workers, add or remove some while workloads run."""

from __future__ import annotations

from hopper.rest._api import actor, services
from hopper.rest.routes import INVALID, api
from hopper.rest.schemas import WorkersBody

UNPROCESSABLE = 422


@api.route("GET", "/workers", tag="workers")
def list_workers():  # noqa: ANN201
    """The worker pool: the requested worker count and the workers the scheduler runs, with their shards.

    ``workers`` lists each worker the scheduler last reported (``id``, ``name``, ``state``: active or draining,
    and ``shards``: for each shard count in use, the shards it owns); ``desired`` is the count last asked for
    (null: never changed from the configured count).
    """
    return services().list_workers().to_dict()


@api.route("POST", "/workers", tag="workers", body=WorkersBody, status=202, errors=(INVALID, UNPROCESSABLE))
def resize_workers(body: WorkersBody):  # noqa: ANN201
    """Add or remove workers while workloads run (the scheduler applies it at its next step).

    ``{"add": N}`` starts N workers, which take a balanced share of the data shards and load them on first use.
    ``{"remove": N}`` drains N workers: each finishes its running sub-epoch, then exits, and its shards go to the
    others; with ``"now": true`` they stop at once and their running sub-epochs are re-run elsewhere. 422 when
    no worker would be left, or when the pool would pass its configured maximum (``max_workers``).
    """
    if body.add is not None:
        return services().add_workers(body.add, actor=actor()).to_dict()
    return services().remove_workers(body.remove, now=body.now, actor=actor()).to_dict()
