"""Migrations of the demo shop, applied by ``odm demo`` (files, not modules to import)."""
