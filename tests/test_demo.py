"""``rpahub demo``: the README's tour, from an empty folder."""

import subprocess
import sys

import pytest

from rpahub_core.testing import free_port

pytestmark = pytest.mark.e2e


def test_demo_runs_the_sample_app_on_a_reference_executor(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rpahub_core.cli", "demo", "--bind", f"127.0.0.1:{free_port()}",
                          "--region", "重庆"], cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "success on demo-robot-1" in out.stdout
    assert "/api/v1/runs/" in out.stdout and "/logs" in out.stdout and "recording:" in out.stdout
    import sqlite3

    con = sqlite3.connect(tmp_path / "var" / "rpahub.db")
    contents = [r[0] for r in con.execute("SELECT content FROM run_log ORDER BY id")]
    assert any("重庆" in c for c in contents)
    assert contents.index(next(c for c in contents if "INV-1" in c)) < contents.index(
        next(c for c in contents if "INV-3" in c))
