"""The refusals every service raises. Their message is for the person who asked, in their language.

Pages and the API turn them into responses in one place each: `riskops.core.http` and `riskops.core.api`.
"""


class DomainError(Exception):
    """A change that is not allowed in the current state, or bad input; nothing was changed (HTTP 400)."""


class ConflictError(DomainError):
    """Someone else changed the object first, or the request repeats one with a different body (HTTP 409)."""


class NotAllowed(DomainError):
    """The actor's role does not allow this action (HTTP 403)."""


class NotFound(DomainError):
    """What the action names does not exist (HTTP 404)."""


class Unavailable(DomainError):
    """A service the action needs cannot answer right now; nothing was changed, try again later (HTTP 503)."""
