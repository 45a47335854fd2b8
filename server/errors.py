"""Domain errors: raised by the store and handlers, turned into JSON answers by one middleware."""

from __future__ import annotations


class WaitroomError(Exception):
    """Base of every error that becomes an HTTP answer; `status` is the HTTP status."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, str]:
        out = {"error": self.message}
        if self.field:
            out["field"] = self.field
        return out


class BadRequest(WaitroomError):
    status = 400


class Unauthorized(WaitroomError):
    status = 401


class Forbidden(WaitroomError):
    status = 403


class NotFound(WaitroomError):
    status = 404


class AppointmentNotFound(NotFound):
    def __init__(self, appointment_id: str, field: str | None = "appointment") -> None:
        super().__init__(f"unknown appointment {appointment_id!r}", field)


class Conflict(WaitroomError):
    """An impossible transition: a second check-in, an end before its start, ..."""

    status = 409


class TooLarge(WaitroomError):
    """More than the clinic takes in one go (a day's visit cap): 413."""

    status = 413


class TooManyRequests(WaitroomError):
    status = 429
