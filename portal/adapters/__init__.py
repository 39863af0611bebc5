"""The outside world, each behind a small interface: the database engine, the payment
gateway, SMTP, the Chromium PDF printer, the job queue connection, the clock. Adapters never
import services or views."""
