"""The component's entry module: componentize-py takes the `Aggregate` export from here."""

from domain import aggregate
from tally_sdk.component import export

Aggregate = export(aggregate)
