"""The admin's error pages: what a refused request or a failed write says, as HTML.

Registered inside the guard and outside the unit of work, so that the unit of work has already
aborted when a page is rendered for an error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from bson.errors import InvalidId

from odm.exceptions import DoesNotExist, StaleDocument

from ..aiohttp.middlewares import new_style
from .forms import FormError
from .listing import ListError
from .security import CSRF_TOKEN
from .site import ADMIN_SITE

STALE_MESSAGE = (
    "Someone else changed this document after you opened it, so your changes were not saved. "
    "Open it again to see the current values, then make your changes again."
)
"""What a stale edit (optimistic lock) is told."""


class FormRefused(Exception):
    """A write refused a value of a form: ``page`` renders the form again with the errors, once
    the unit of work has aborted.

    Not inside it: a write that fails in the driver (a value it cannot encode, on the
    transaction's first command) may leave the transaction unusable, and the form reads (its
    reference pickers list documents).
    """

    def __init__(self, page: Callable[[], Awaitable[web.Response]]) -> None:
        super().__init__("the form holds a value that cannot be stored")
        self.page = page


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """Render the admin's error page."""
    return aiohttp_jinja2.render_template(
        "error.html",
        request,
        {
            "site": request.app[ADMIN_SITE],
            "csrf_token": request.get(CSRF_TOKEN, ""),
            "title": title,
            "detail": message,
            "status": status,
            "message": None,
        },
        status=status,
    )


@new_style
async def admin_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer known errors with an HTML page naming the culprit."""
    try:
        return await handler(request)
    except FormRefused as exc:
        return await exc.page()
    except ListError as exc:
        return error_page(request, 400, "Bad query parameter", str(exc))
    except FormError as exc:
        return error_page(request, 400, "Refused form field", str(exc))
    except StaleDocument:
        return error_page(request, 409, "Stale edit refused", STALE_MESSAGE)
    except (DoesNotExist, InvalidId) as exc:
        return error_page(request, 404, "Not found", str(exc) or "no such document")
    except web.HTTPNotFound as exc:
        return error_page(request, 404, "Not found", exc.text or "not found")
