"""How many bad inputs the fuzz suite tried and how many the gateway handled cleanly (no 5xx, no hang)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

SAVED = Path(__file__).resolve().parent.parent / "test-artifacts" / "fuzz-tally"
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


def save() -> None:
    """This process's tally, for the controller of an xdist run to add up."""
    if tried:
        SAVED.mkdir(parents=True, exist_ok=True)
        (SAVED / f"{os.getpid()}.json").write_text(json.dumps({"tried": tried, "clean": clean, "unclean": unclean}))


def clear_saved() -> None:
    for path in SAVED.glob("*.json"):
        path.unlink()


def load_saved() -> tuple[Counter[str], Counter[str], list[str]]:
    """Every process's tally of this run, added up."""
    all_tried, all_clean, all_unclean = Counter[str](), Counter[str](), list[str]()
    for path in SAVED.glob("*.json"):
        part = json.loads(path.read_text())
        all_tried.update(part["tried"])
        all_clean.update(part["clean"])
        all_unclean.extend(part["unclean"])
    return all_tried, all_clean, all_unclean


def summary(tally: tuple[Counter[str], Counter[str], list[str]]) -> str | None:
    tried, clean, unclean = tally
    if not tried:
        return None
    per_kind = ", ".join(f"{kind} {clean[kind]}/{count}" for kind, count in sorted(tried.items()))
    lines = [f"bad inputs tried: {sum(tried.values())}, handled cleanly: {sum(clean.values())} ({per_kind})"]
    return "\n".join(lines + [f"  not clean: {note}" for note in unclean[:20]])
