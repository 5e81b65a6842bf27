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
            "title": title,
            "detail": message,
            "status": status,
            "message": None,
        },
        status=status,
    )


TOO_MANY_FIELDS_MARK = "form fields"
"""What aiohttp's message says of its cap on a form's fields (and not of its cap on a body's
size, the other 413 of ``request.post()``)."""


def form_too_large_page(request: web.Request, error: web.HTTPRequestEntityTooLarge) -> web.Response:
    """The admin's page (a 413) for a form aiohttp would not read: more fields, or more bytes,
    than the application lets one request send; it names that limit and how to raise it."""
    fields = getattr(request, "client_max_fields", 0)  # not in older aiohttp (no such cap)
    if fields and TOO_MANY_FIELDS_MARK in (error.text or ""):
        limit = f"more than {fields} fields, the most"
        setting = "client_max_fields"
    else:
        limit = f"more than {getattr(request, 'client_max_size', 1024**2)} bytes, the most"
        setting = "client_max_size"
    message = (
        f"The form holds {limit} one request may send: it was not read, and nothing was saved. "
        f"The application sets that limit (web.Application({setting}=...))."
    )
    return error_page(request, 413, "Form too large", message)


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
