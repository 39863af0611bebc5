"""What every test (tests/ and e2e/) shares: a cheap password hash.

Production hashes with argon2id at RFC 9106's low-memory profile (64 MiB, 3 passes), about
0.1 s a hash or a check, which is the point. The suite signs in and builds demo
districts hundreds of times, so under test the same argon2id runs with the smallest
parameters argon2 allows; tests/db/test_users.py checks the production parameters once.
"""

from __future__ import annotations

from argon2 import PasswordHasher

from portal.billing_core import users

PRODUCTION_HASHER = users._hasher
users._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
users._DUMMY_HASH = users._hasher.hash("not a real password")
