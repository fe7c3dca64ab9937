"""How many bad inputs the fuzz suite tried and how many the gateway handled cleanly (no 5xx, no hang)."""

from __future__ import annotations

from collections import Counter

tried: Counter[str] = Counter()
clean: Counter[str] = Counter()
unclean: list[str] = []


def record(kind: str, handled: bool, detail: str = "") -> bool:
    """Count one input of `kind`; keep a note of any that was not handled cleanly."""
    tried[kind] += 1
    if handled:
        clean[kind] += 1
    else:
        unclean.append(f"{kind}: {detail}"[:300])
    return handled


def summary() -> str | None:
    if not tried:
        return None
    per_kind = ", ".join(f"{kind} {clean[kind]}/{count}" for kind, count in sorted(tried.items()))
    lines = [f"bad inputs tried: {sum(tried.values())}, handled cleanly: {sum(clean.values())} ({per_kind})"]
    return "\n".join(lines + [f"  not clean: {note}" for note in unclean[:20]])
