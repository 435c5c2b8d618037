"""One exception hierarchy for Hopper; each class knows its HTTP status and CLI exit code."""

from __future__ import annotations


class HopperError(Exception):
    """Base of every error Hopper reports to a user.

    Args:
        message: one line a user can act on.
        field: the input key the error is about, when there is one.
    """

    http_status = 500
    exit_code = 1
    code = "internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "field": self.field}


class ValidationError(HopperError):
    """The input is malformed or inconsistent."""

    http_status = 400
    exit_code = 2
    code = "invalid"


class NotFound(HopperError):
    """The named object does not exist."""

    http_status = 404
    exit_code = 3
    code = "not_found"


class Conflict(HopperError):
    """Someone else changed the object first (stale version) or it already exists."""

    http_status = 409
    exit_code = 4
    code = "conflict"


class InvalidState(HopperError):
    """The action does not apply to the object's current state (e.g. resume a finished config)."""

    http_status = 409
    exit_code = 5
    code = "invalid_state"


class Unprocessable(ValidationError):
    """Well-formed input the service refuses for what it means: a name that refers to nothing, a space outside
    its parent's, hyperparameters the model does not take. Over REST: 422 where a request matched the API's
    schema (400 stays for requests that do not)."""

    http_status = 422


class PathNotAllowed(ValidationError):
    """A path lies outside the configured data roots."""

    http_status = 403
    code = "path_not_allowed"


class SchemaOutOfDate(HopperError):
    """The database schema is older (or newer) than this version of Hopper."""

    http_status = 503
    exit_code = 6
    code = "schema_out_of_date"


class StoreUnavailable(HopperError):
    """The database cannot be reached; retry later."""

    http_status = 503
    exit_code = 7
    code = "store_unavailable"


class LeaseHeld(HopperError):
    """Another scheduler holds this store's scheduler lease; a second one would train configs twice."""

    http_status = 409
    exit_code = 10
    code = "scheduler_lease_held"


class TooBusy(HopperError):
    """A queue or a per-actor limit is full; retry after ``retry_after`` seconds."""

    http_status = 429
    exit_code = 11
    code = "too_busy"

    def __init__(self, message: str, *, retry_after: int = 5, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class ScriptRejected(ValidationError):
    """An uploaded model script failed validation; ``details`` holds the traceback."""

    code = "script_rejected"

    def __init__(self, message: str, *, details: str = "", field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.details = details


class TrainingError(HopperError):
    """A sub-epoch failed; ``retryable`` says whether re-running it may help."""

    code = "training_failed"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class NotPermitted(HopperError):
    """The caller is known but its role (or device) may not do this."""

    http_status = 403
    exit_code = 8
    code = "forbidden"
