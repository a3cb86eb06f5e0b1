"""Prints `api-fuzz: N passed, M failed` for a schemathesis JUnit report.

Usage: junit_summary.py REPORT. Counts its test cases (one per operation, and one for
the stateful tests): failed when it has a failure or an error. `.ci/run` adds up lines
of this form, so it is printed only from the report itself.
"""

import sys
from xml.etree import ElementTree


def main(report):
    passed = failed = skipped = 0
    for case in ElementTree.parse(report).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    line = f"api-fuzz: {passed} passed, {failed} failed"
    print(line + (f", {skipped} skipped" if skipped else ""))


if __name__ == "__main__":
    main(sys.argv[1])
