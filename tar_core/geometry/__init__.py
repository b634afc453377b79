"""Geometry: the full-image camera (CLIFF), rotation representations, square crops and their normalisation.

May import ``util`` and ``errors`` only (numpy, torch, OpenCV).
"""
