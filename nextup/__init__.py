"""Nextup: an open-source queue management system for service halls."""

__version__ = "0.1.0"
