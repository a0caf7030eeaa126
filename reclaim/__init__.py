"""Reclaim: a self-hostable account-recovery case manager on Temporal."""
