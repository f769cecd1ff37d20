"""Prints the slowest tests of one or more pytest JUnit XML reports (hack/test.sh: of every phase together).

Usage: python3 hack/lib/slowest.py COUNT REPORT.xml...   Each line: seconds (setup, call and teardown),
the phase (the report's name) and the test."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def main(count: int, reports: list[str]) -> None:
    timed = []
    for report in reports:
        path = Path(report)
        if not path.is_file():
            continue
        for case in ElementTree.parse(path).iter("testcase"):
            name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name', '')}"
            timed.append((float(case.get("time") or 0.0), path.stem, name))
    timed.sort(reverse=True)
    print(f"slowest {min(count, len(timed))} tests of the run (setup + call + teardown):")
    for seconds, phase, name in timed[:count]:
        print(f"{seconds:8.1f}s  {phase:8s} {name}")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
