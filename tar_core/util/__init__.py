"""Small utilities every layer may use: atomic writes, progress events, cancellation.

Stdlib only (plus ``tar_core.errors``); imports no other package of ``tar_core``.
"""
