"""Mistakes in wiring the integration are refused when made, not at the first request or at
startup: ``setup_odm`` twice for one alias, ``methods="POST"`` as one string."""

from __future__ import annotations

import pytest
from aiohttp import web

import odm
from odm.contrib.aiohttp import setup_odm, unit_of_work_middleware_factory


def test_setup_odm_twice_for_one_alias_is_refused_at_once() -> None:
    app = web.Application()
    setup_odm(app, "mongodb://127.0.0.1:1/shop")
    with pytest.raises(odm.ConfigurationError, match="already called for alias 'default'"):
        setup_odm(app, "mongodb://127.0.0.1:1/shop")
    assert len(app.cleanup_ctx) == 1, "the refused call registered nothing"
    setup_odm(app, "mongodb://127.0.0.1:1/reports", alias="reports")  # another alias: fine
    setup_odm(web.Application(), "mongodb://127.0.0.1:1/shop")  # another application: fine


def test_methods_as_one_string_is_refused() -> None:
    with pytest.raises(TypeError, match=r"methods=\['POST'\]"):
        unit_of_work_middleware_factory(methods="POST")
