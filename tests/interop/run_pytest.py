"""Runs one interop pytest file for ctest: pytest's exit status, or 77 (ctest's SKIP_RETURN_CODE) when all skipped."""
import sys

import pytest

SKIPPED = 77


class Outcomes:
    """Counts the test outcomes of the run (setup skips included: a fixture's pytest.skip skips the test)."""

    def __init__(self):
        self.passed = self.skipped = self.failed = 0

    def pytest_runtest_logreport(self, report):
        if report.skipped and report.when in ("setup", "call"):
            self.skipped += 1
        elif report.failed:
            self.failed += 1
        elif report.passed and report.when == "call":
            self.passed += 1


def main(args):
    outcomes = Outcomes()
    # -rsx: print every skip and expected-failure reason, so a skip in ctest's log says why.
    status = pytest.main(["-q", "-rsx", "-p", "no:cacheprovider", *args], plugins=[outcomes])
    if status == 0 and outcomes.skipped and not outcomes.passed and not outcomes.failed:
        return SKIPPED
    return int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
