"""The schema's bookkeeping: the head revision the CLI checks without loading Alembic is Alembic's."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from ccgate.store.db import HEAD_REVISION, alembic_config


def test_the_known_head_revision_is_alembics_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///:memory:"))
    assert script.get_heads() == [HEAD_REVISION]
