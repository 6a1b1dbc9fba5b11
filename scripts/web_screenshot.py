"""Redraw docs/web.png, the README's picture of the web page: the three sample clips' job in
headless chromium, taken by the web test that runs that job (tests/test_web.py), which saves
its page where SPEAKERLINK_WEB_SCREENSHOT says. Needs the test install (`.venv/.installed-dev`).

    .venv/bin/python scripts/web_screenshot.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "web.png"


def main() -> int:
    env = os.environ | {"SPEAKERLINK_WEB_SCREENSHOT": str(PICTURE)}
    test = "tests/test_web.py::test_the_sample_clips_come_out_as_one_timeline_with_a_colour_per_person"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT, env=env)
    if done.returncode == 0:
        print(f"wrote {PICTURE.relative_to(ROOT)}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
