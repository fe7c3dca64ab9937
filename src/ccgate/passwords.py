"""The password policy: long enough, and not guessable by zxcvbn's estimate (common passwords,
keyboard walks, repeats, dates, the user's own email).  One check for the web pages, the admin API
and the CLI.

zxcvbn (the Dropbox estimator, packaged on PyPI as `zxcvbn`) is used rather than a shipped list of
common passwords: it ships such lists itself (30,000 passwords, names, English words) and also
catches patterns a list cannot (`aaaaaaaa`, `qwertyuiop`, `alice2024` for alice@...).  Its lists
take 14 MB once loaded, so they are loaded when the first password is judged, not by every serving
process at start.
"""

from __future__ import annotations

MIN_CHARS = 8
MAX_CHARS = 1024
MIN_SCORE = 2  # zxcvbn's 0-4 scale: 2 is "somewhat guessable", about 10^8 guesses
_SCORED_CHARS = 72  # zxcvbn refuses longer input; a longer password is judged by its first 72 characters


def password_problem(password: str, email: str = "") -> str | None:
    """Why this password is refused, for the person choosing it; None when it is fine."""
    if not MIN_CHARS <= len(password) <= MAX_CHARS:
        return f"a password has {MIN_CHARS} to {MAX_CHARS} characters"
    if not password.strip():
        return "a password cannot be only spaces"
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]

    local_part = email.split("@", 1)[0]
    verdict = zxcvbn(password[:_SCORED_CHARS], user_inputs=[email, local_part, "ccgate"])
    if verdict["score"] >= MIN_SCORE:
        return None
    warning = verdict["feedback"].get("warning") or "It is too easy to guess."
    return f"that password is too easy to guess: {warning.rstrip('.')}. Try a few uncommon words together"
