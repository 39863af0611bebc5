"""The billing domain: money, ledger, aging, accounts, rates.

Nothing here imports the web layer. Rules are pure functions over values and
take ``as_of`` dates rather than reading the clock; persistence helpers take a
SQLAlchemy session from their caller and never commit.
"""
