"""Shared test settings; the real server and database fixtures come from odm.contrib.pytest."""
