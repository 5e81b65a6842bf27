"""Integrations with other frameworks, installed as ``odm.contrib`` (like ``django.contrib``)."""
