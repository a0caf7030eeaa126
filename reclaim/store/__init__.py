"""Reclaim's own database: the engine (`engine`), the features' tables (`models`) and the
schema migrations (`migrations`). The account tables belong to the built-in directory
(`reclaim.directory.tables`)."""
