"""Self-service recovery: a one-time code by email or SMS, then a new password. `service.py` is
its entry point; `contracts.py` what its workflow exchanges; `rules.py` the channel and masked
destination; `ledger.py` the cases in SQL."""
