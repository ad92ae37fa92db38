"""Run a piece of SIP test code in a fresh network namespace that has only loopback (`unshare -n`).

SIP load and torture messages name addresses in Via, Contact and SDP, and the server answers
along them: inside the namespace nothing can leave the machine or reach another SIP service on
it. Needs root with `unshare` and `ip`; otherwise the calling test is skipped. The code prints
one line `MARKER {json}`; its JSON is returned.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_in_netns(code: str, marker: str, timeout_s: float = 90) -> dict:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root with unshare and ip to run inside a loopback-only network namespace")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n does not work here: {probe.stderr.decode(errors='replace').strip()}")
    script = f'ip link set lo up && exec {sys.executable} -c "{code}"'
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(marker + " ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1].removeprefix(marker + " "))
