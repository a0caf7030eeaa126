"""Account lifecycle: signing in (which keeps a deactivated account), deactivation with a grace
period before the purge, bans, and the accounts operators create. `service.py` is its entry
point; `contracts.py` what its workflows exchange."""
