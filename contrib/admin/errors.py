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
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from odm.exceptions import DoesNotExist, StaleDocument, is_stored_document_error

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


PROBLEMS_SHOWN = 20
"""How many fields that do not fit its model the page of a stored document names (a stored
mapping of a million bad entries is a million errors: the page says how many more there are)."""

TEXT_SHOWN = 200
"""How many characters of a document's name (its ``_id``), of a field's path (a stored
mapping's key) and of a message the page quotes: the database's text may be megabytes."""


def stored_document_page(request: web.Request, error: ValidationError) -> web.Response:
    """The admin's page (a 500) for a stored document that does not fit its model (written by
    another program, or before the model changed): it names the document and each field that
    does not fit, and why, so that it can be mended; nothing is shown as if it were valid.
    Its size is bounded whatever the document holds (:data:`PROBLEMS_SHOWN`,
    :data:`TEXT_SHOWN`)."""
    found = error.errors(include_url=False, include_input=False, include_context=False)
    problems = "; ".join(_problem(problem) for problem in found[:PROBLEMS_SHOWN])
    if len(found) > PROBLEMS_SHOWN:
        problems += f"; and {len(found) - PROBLEMS_SHOWN} more"
    message = f"{_cut(error.title)} does not fit the model: {problems}"
    return error_page(request, 500, "A stored document does not fit its model", message)


def _problem(problem: ErrorDetails) -> str:
    """One field that does not fit, as the page names it: its path, then why."""
    path = ".".join(str(part) for part in problem["loc"]) or "(document)"
    return f"{_cut(path)}: {_cut(problem['msg'])}"


def _cut(text: str) -> str:
    """``text``, cut after :data:`TEXT_SHOWN` characters with its length said."""
    if len(text) <= TEXT_SHOWN:
        return text
    return f"{text[:TEXT_SHOWN]}... ({len(text)} characters)"


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
    except ValidationError as exc:
        if not is_stored_document_error(exc):
            raise
        return stored_document_page(request, exc)
