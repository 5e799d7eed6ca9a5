"""The package version, recorded in every run's configuration (a new version makes new run ids)."""

__version__ = "0.1.0"
