"""The test summary names each failed test and why, read from the JUnit report pytest itself wrote."""

from __future__ import annotations

import subprocess
import sys

from scripts.run_tests import junit_counts, junit_failures

CASES = '''
import pytest

def test_passes():
    pass

def test_fails():
    assert 1 + 1 == 3, "arithmetic broke"

@pytest.fixture
def broken():
    raise RuntimeError("fixture could not start")

def test_errors(broken):
    pass

@pytest.mark.parametrize("mode", ["dynamic", "xds"])
def test_per_mode(mode):
    assert mode == "xds"
'''


def test_failures_and_errors_are_named_with_their_first_line(tmp_path):
    (tmp_path / "test_sample.py").write_text(CASES)
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    "test_sample.py"], cwd=tmp_path, capture_output=True, timeout=120, check=False)

    assert junit_counts(report) == (5, 2, 1, 0)
    said = junit_failures(report)
    assert len(said) == 3
    assert said[0].startswith("failure: test_sample.py::test_fails: AssertionError: arithmetic broke")
    assert said[1].startswith("error: test_sample.py::test_errors: ")
    assert said[2].startswith("failure: test_sample.py::test_per_mode[dynamic]: "
                              "AssertionError: assert 'dynamic' == 'xds'")


def test_a_long_list_is_cut_and_says_how_many_more(tmp_path):
    cases = "".join(f"def test_{n}():\n    assert False\n" for n in range(13))
    (tmp_path / "test_many.py").write_text(cases)
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    "test_many.py"], cwd=tmp_path, capture_output=True, timeout=120, check=False)

    said = junit_failures(report, limit=10)
    assert len(said) == 11
    assert said[-1] == "... and 3 more (see the report)"


def test_no_report_names_nothing(tmp_path):
    assert junit_failures(tmp_path / "absent.xml") == []
