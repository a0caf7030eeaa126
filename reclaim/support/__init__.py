"""Support claims and the staff who decide them. `service.py` is its entry point;
`contracts.py` what its workflow exchanges; `evidence.py` the checks and the risk; `ledger.py`
the claims in SQL; `staff.py` the staff and their keys."""
