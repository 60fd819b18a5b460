"""The ground floor's one exception: a request the user can fix.

Every room may raise it; nothing here imports from the rest of the app.
"""


class ServiceError(Exception):
    """A request the user can fix; `message` says how, in words for the page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ReplyInFlight(ServiceError):
    """Refused because a reply is still being written: out of date once it ends."""
