"""The account holder's own second factors: the security page's door (`door.py`)."""
