"""Given/when/then tests, run natively with pytest. Each step goes through the same
JSON encoding the component uses."""

from domain import Record, Recorded, aggregate
from tally_sdk.testing import given


def test_recording_a_value_counts_it_and_adds_it_to_the_total():
    state = (
        given(aggregate, [Recorded(value=2)]).when(Record(value=3)).then_events([Recorded(value=3)])
    )
    assert state.count == 2
    assert state.total == 5


def test_recording_zero_is_rejected():
    given(aggregate).when(Record(value=0)).then_rejects("invalid-value")


def test_a_value_that_is_not_a_number_is_an_invalid_command():
    given(aggregate).when_raw("Record", '{"value": "five"}').then_rejects("invalid-command")
