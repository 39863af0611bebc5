"""One error hierarchy for the domain; the web layer maps it to pages in one place."""

from __future__ import annotations


class BillingError(Exception):
    """Base for every error the billing core raises on purpose."""


class InvalidInput(BillingError):
    """Input that cannot be accepted; ``field`` names what was wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(BillingError):
    """The thing asked for does not exist, or the asker may not see it."""


class UnbalancedTransaction(BillingError):
    """A ledger transaction whose debits and credits do not sum to zero."""


class AlreadyReversed(BillingError):
    """A ledger transaction may be reversed once only."""
