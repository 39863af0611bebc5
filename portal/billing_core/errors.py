"""One error hierarchy for the domain; the web layer maps it to pages in one place."""

from __future__ import annotations


class BillingError(Exception):
    """Base for every error the billing core raises on purpose."""


def N_(message: str) -> str:  # noqa: N802 - the usual name for "mark for translation"
    """Marks a message for the translation catalogs; the web layer translates it when shown."""
    return message


class InvalidInput(BillingError):
    """Input that cannot be accepted; ``field`` names what was wrong.

    ``message`` may hold ``%(name)s`` placeholders filled from ``params``: the web layer
    translates the message first, then fills them in (``str(exc)`` is the English text)."""

    def __init__(self, message: str, field: str | None = None, **params: object) -> None:
        super().__init__(message % params if params else message)
        self.template = message
        self.params = params
        self.message = message % params if params else message
        self.field = field


class NotFound(BillingError):
    """The thing asked for does not exist, or the asker may not see it."""


class UnbalancedTransaction(BillingError):
    """A ledger transaction whose debits and credits do not sum to zero."""


class AlreadyReversed(BillingError):
    """A ledger transaction may be reversed once only."""


class NotAllowed(BillingError):
    """The person asking may not take this step (``permissions.require``): a 403 page on the
    web, an error on the command line. ``message`` says who may."""

    def __init__(self, message: str, action: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.action = action


class FieldErrors(BillingError):
    """Every problem with a form, by field (field name -> ``InvalidInput``): nothing was
    written. Views show each message next to its field."""

    def __init__(self, errors: dict[str, InvalidInput]) -> None:
        super().__init__("; ".join(e.message for e in errors.values()))
        self.errors = errors

    @classmethod
    def one(cls, field: str, message: str, **params: object) -> FieldErrors:
        return cls({field: InvalidInput(message, field, **params)})
