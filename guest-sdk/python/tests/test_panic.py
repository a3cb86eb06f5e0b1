"""An uncaught exception is reported as one marked line (wit/WIRE.md, Panics)."""

import pytest

from tally_sdk.panic import PANIC_MARKER, one_line, panic_line, report


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_line_breaks_and_backslashes_are_escaped():
    assert one_line("a\nb\r\\c") == "a\\nb\\r\\\\c"


def test_the_line_carries_marker_type_message_and_location():
    line = panic_line(raised(RuntimeError("balance 7 overflowed\nbadly")))
    assert line.startswith(f"{PANIC_MARKER}RuntimeError: balance 7 overflowed\\nbadly (at ")
    assert "test_panic.py:" in line
    assert line.endswith(")\n") and line.count("\n") == 1


def test_the_location_is_file_line_and_column():
    line = panic_line(raised(ValueError("x")))
    location = line[line.rindex(" (at ") + 5 : -2]
    file, line_number, column = location.rsplit(":", 2)
    assert file.endswith("test_panic.py") and int(line_number) > 0 and int(column) >= 1


def test_an_exception_without_a_message_or_traceback_is_its_type():
    assert panic_line(KeyError()) == f"{PANIC_MARKER}KeyError\n"


def test_report_writes_the_line_to_stderr(capsys):
    report(raised(ZeroDivisionError("division by zero")))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{PANIC_MARKER}ZeroDivisionError: division by zero (at ")


def test_report_survives_a_closed_stderr(monkeypatch):
    class Closed:
        def write(self, text):
            raise ValueError("I/O operation on closed file")

    monkeypatch.setattr("sys.stderr", Closed())
    report(RuntimeError("x"))  # no exception escapes


@pytest.mark.parametrize("message", ["", "plain"])
def test_the_marker_starts_the_line(message):
    assert panic_line(RuntimeError(message)).startswith(PANIC_MARKER)
