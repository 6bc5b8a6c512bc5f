"""The agent REST API (/api/v1/): thin views over governance and ledger selectors and services."""
