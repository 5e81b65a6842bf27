"""The package version, read by the build and by ``odm --version``."""

__version__ = "0.1.0"
