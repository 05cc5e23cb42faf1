"""Run our Processing algorithms through ``qgis_process.bin`` with the plugin installed in a throw-away
QGIS profile (Debian's ``qgis_process`` wrapper passes an option the binary refuses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def install_plugin(config: Path) -> dict[str, str]:
    """Copy the plugin into ``config``'s default profile and enable it; the environment for qgis_process."""
    plugin_dir = config / "profiles" / "default" / "python" / "plugins" / "huijiao_plugin"
    shutil.copytree(
        ROOT / "huijiao_plugin", plugin_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    shutil.copy(ROOT / "metadata.txt", plugin_dir / "metadata.txt")
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(config), QT_QPA_PLATFORM="offscreen")
    subprocess.run(["qgis_process.bin", "plugins", "enable", "huijiao_plugin"], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    return env


def run_algorithm(env: dict[str, str], algorithm: str, params: dict[str, str]) -> dict:
    """``qgis_process.bin --json run``; the algorithm's results (asserts a zero exit status)."""
    args = ["qgis_process.bin", "--json", "run", algorithm, "--"] + [f"{k}={v}" for k, v in params.items()]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)["results"]
