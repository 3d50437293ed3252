"""Password hashing for the test process only (tests/conftest.py puts it first).

Production hashes with Django's PBKDF2 at its full iteration count (1,000,000 in Django 5.2):
≈ 0.5–2 s per hash on the CI machine, paid by every `make_mitra()`, staff user and login of the
suite. This is the same algorithm (`pbkdf2_sha256`, so code and tests that identify or verify
hashes see what production writes) with few iterations. Server processes started by tests keep
the production hashers; they verify these hashes as they are (the iterations are in the hash).
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000
