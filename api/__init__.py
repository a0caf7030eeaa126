"""The HTTP front end: turns requests into workflow starts, updates, signals and queries."""
