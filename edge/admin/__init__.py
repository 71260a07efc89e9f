"""The dashboard under ``/admin``: sign-in, platforms, connect wizard, debug view, quality,
dead letters, config export/apply. ``edge.admin.app.create_admin`` builds it.

Kept import-light: ``edge.settings`` imports ``edge.admin.passwords`` to check a stored hash.
"""
