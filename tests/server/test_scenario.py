"""The end-to-end scenario (python -m exchange_server scenario) against the test server, small package."""

from __future__ import annotations

import subprocess
import sys

from tests.server.conftest import ADMIN_PASSWORD
from tests.server.helpers import REPO


def test_scenario_cut_three_times_commit_verify_pull_feed_evaluate(server):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "exchange_server",
            "scenario",
            "--url",
            server.url,
            "--admin-user",
            "admin",
            "--admin-password",
            ADMIN_PASSWORD,
            "--size-mb",
            "3",
            "--region",
            "610113",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("次断线") == 3
    assert "签名离线验证通过" in out.stdout and "状态 met" in out.stdout
    assert "全部通过" in out.stdout
