"""Domain errors: every refusal the service can give, each with one code and one HTTP status.

REST maps them to RFC 9457 problem bodies (api/rest/problems.py), GraphQL to error extensions
(api/graphql/errors.py), the CLI to `papers: FILE:LINE: message`; nothing else restates them.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """A refusal meant for the client: its message is shown as is."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_USER_INPUT"
    title: ClassVar[str] = "Bad Request"

    def __init__(self, message: str, *, retry_after: int | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.line = line


class InvalidInputError(DomainError):
    """A parameter, body or text that cannot be used as given."""


class InvalidCursorError(InvalidInputError):
    """A cursor that was not issued by this service for this query."""


class NotAListingError(InvalidInputError):
    """An input that holds no listing; `line` points at the offending line where one applies."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message, line=line)


class QueryTooCostlyError(InvalidInputError):
    """A request whose estimated work is past what one request may cost."""

    code = "QUERY_TOO_COSTLY"


class UnauthenticatedError(DomainError):
    """A write without the right API key."""

    status, code, title = 401, "UNAUTHENTICATED", "Unauthorized"


class NotFoundError(DomainError):
    """A resource that does not exist."""

    status, code, title = 404, "NOT_FOUND", "Not Found"


class SpaceMismatchError(DomainError):
    """Stored vectors and the configured embedder belong to different embedding spaces."""

    status, code, title = 409, "EMBEDDING_SPACE_MISMATCH", "Conflict"


class UnavailableError(DomainError):
    """Something the request needs is not available right now (database, model); retry later."""

    status, code, title = 503, "SERVICE_UNAVAILABLE", "Service Unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, retry_after=retry_after)


class DatabaseUnavailableError(UnavailableError):
    """The database cannot be reached or started; the message says what to do."""


class QueryTimeoutError(UnavailableError):
    """A statement ran past the server's time limit and was stopped."""

    code = "QUERY_TIMEOUT"


DATABASE_UNAVAILABLE = "the database is unavailable; retry shortly"
CONFLICTED = "the request was stopped by a conflict with another transaction (a deadlock); retry it"
QUERY_TIMEOUT = (
    "the query ran past the server's time limit and was stopped; narrow it (a filter, fewer or rarer words, no"
    " quoted phrase of common words) or retry later"
)
UNSTORABLE = "the request contains a character that cannot be stored or searched (NUL, or an unpaired surrogate)"
