"""The README's curl walkthrough, run as it stands against the stack: every context from a
shell (identity, orgs, scheduled webhooks, devices, readings, commands, alerts, media, exports)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
BLOCK = re.compile(r"<!-- walkthrough -->\n```sh\n(.*?)```\n<!-- end -->", re.DOTALL)


def test_the_readme_walkthrough_runs_as_written(endpoints: dict[str, Any], tmp_path: Path) -> None:
    # Given the block between the README's walkthrough markers
    match = BLOCK.search((ROOT / "README.md").read_text())
    assert match, "README.md has no <!-- walkthrough --> block"
    endpoints_file = tmp_path / "endpoints.json"
    endpoints_file.write_text(json.dumps(endpoints))

    # When bash runs it, failing on the first command that fails (curl -f: any HTTP error)
    ran = subprocess.run(  # noqa: S603 - bash on the README's own block
        ["/bin/bash", "-euo", "pipefail", "-c", match.group(1)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "ENDPOINTS": str(endpoints_file)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # Then every command succeeded, and the last one shows the export it asked for
    assert ran.returncode == 0, f"stdout:\n{ran.stdout[-3000:]}\nstderr:\n{ran.stderr[-3000:]}"
    last = json.loads(ran.stdout.strip().splitlines()[-1])
    assert last["resolution"] == "1m" and last["status"] in {"queued", "running", "ready"}
