"""Application services: one module per area, one use case per function.

A service function takes its collaborators explicitly (a database session or session
factory, the clock, the payment gateway, the mailer, the document printer), does one use case
in one transaction, and returns plain values or core objects for the view to render. Rules
live in ``billing_core``; the outside world is reached through ``portal.adapters``. Services
import neither Starlette nor the views."""
