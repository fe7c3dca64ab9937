"""Issue 16, item 7 (backups): `ccgate backup` takes SQLite's online backup; copied back into a fresh
data dir with the server secret, it serves the same keys and balances."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

from ccgate.config import SECRET_FILE
from harness import CCGATE, Gateway


def sqlite_gateway(data_dir) -> Gateway:
    """A lone gateway on SQLite, whatever deployment the suite runs as."""
    return Gateway(data_dir, extra_env={"CCGATE_DATABASE_URL": f"sqlite:///{data_dir}/ccgate.sqlite3"}, workers=1)


def key_status(gateway: Gateway, key: str) -> dict:
    request = urllib.request.Request(gateway.url + "/v1/key-status", headers={"x-api-key": key})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_backup_restores_to_a_gateway_with_the_same_key_and_balance(sim, tmp_path):
    original = sqlite_gateway(tmp_path / "original")
    original.add_account("sim-main", "sk-ant-sim-main", sim.url)
    original.new_user("payer@example.com", "--credit-usd", "7.25")
    key = original.new_key("payer@example.com")
    original.start()
    try:
        before = key_status(original, key)["credit"]
        copy = tmp_path / "backup.sqlite3"
        done = original.cli("backup", str(copy))  # while the server runs: the online backup
        assert "keep the server secret too" in done.stdout
    finally:
        original.stop()

    restored = sqlite_gateway(tmp_path / "restored")
    restored.data_dir.mkdir()
    shutil.copy(copy, restored.data_dir / "ccgate.sqlite3")
    shutil.copy(original.data_dir / SECRET_FILE, restored.data_dir / SECRET_FILE)
    restored.start()
    try:
        assert key_status(restored, key)["credit"] == before
        assert before["balance_micro"] == 7_250_000
        assert restored.cli("credit", "show", "payer@example.com").stdout.startswith("payer@example.com: $7.25")
    finally:
        restored.stop()


def test_a_backup_of_postgresql_points_to_pg_dump(tmp_path):
    result = subprocess.run([*CCGATE, "backup", str(tmp_path / "copy")], capture_output=True, text=True, timeout=30,
                            env={**Gateway(tmp_path).env, "CCGATE_DATABASE_URL": "postgresql://u@127.0.0.1:1/db"})
    assert result.returncode == 2 and "pg_dump" in result.stderr
    assert not (tmp_path / "copy").exists()
