"""The component's entry module: componentize-py takes the `Aggregate` export from here."""

from bank_account import account
from tally_sdk.component import export

Aggregate = export(account)
