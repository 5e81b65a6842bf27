"""The admin's pages: index, list, detail, add, edit, delete, migrations.

Every POST runs in one unit of work (the sub-app's ``unit_of_work_middleware``): a handler that
answers with an error status, or raises, leaves nothing written.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError
from pymongo.errors import PyMongoError

import odm
from odm.exceptions import DuplicateKey, MigrationError, QueryError, StaleDocument

from . import detail, forms, listing, picker, writes
from .errors import FormRefused, error_page
from .options import ModelAdmin
from .security import CSRF_TOKEN
from .site import ADMIN_SITE, AdminSite

routes = web.RouteTableDef()

MESSAGES = {
    "created": "The document was created.",
    "saved": "The changes were saved.",
    "deleted": "The document was deleted.",
}
"""The notices a redirect may ask for (by code: no text from the URL is shown)."""


def _site(request: web.Request) -> AdminSite:
    return request.app[ADMIN_SITE]


def _context(request: web.Request, **values: Any) -> dict[str, Any]:
    site = _site(request)
    return {
        "site": site,
        "csrf_token": request[CSRF_TOKEN],
        "message": MESSAGES.get(request.query.get("msg", "")),
        **values,
    }


def _render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    return aiohttp_jinja2.render_template(
        template, request, _context(request, **values), status=status
    )


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """The registered models with their document counts (the collection's metadata count)."""
    site = _site(request)
    rows = []
    for admin in site.admins.values():
        meta = admin.model._meta
        collection = odm.get_database(meta.alias)[meta.collection]
        count = await collection.estimated_document_count()
        rows.append({"admin": admin, "count": count})
    return _render(request, "index.html", rows=rows)


@routes.get("/{model}/")
async def changelist(request: web.Request) -> web.Response:
    """One page of a model's documents: filtered, searched, ordered, by keyset."""
    admin = _site(request).admin_for(request.match_info["model"])
    found = await listing.page(admin, request.query)
    columns = admin.columns()
    specs = {s.name: s for s in forms.describe(admin.model)}
    rows = [
        {"id": str(doc.id), "cells": [_cell(doc, name, specs) for name in columns]}
        for doc in found.rows
    ]
    return _render(request, "list.html", admin=admin, page=found, columns=columns, rows=rows)


def _cell(doc: Any, name: str, specs: dict[str, forms.FieldSpec]) -> str:
    value = getattr(doc, name, None)
    if value is None:
        return "\u2014"
    spec = specs.get(name)
    if spec is None or name == "id":
        return str(value)
    return str(forms.shown(spec, value))


async def _load(admin: ModelAdmin, id: str) -> Any:
    """The document whose id the URL names, read as the model's id field reads it (an
    ObjectId, but any id type: ``id: str``, ``id: int``); a 404 when there is none."""
    try:
        found = admin.model.objects.filter(id=id)
    except QueryError:
        raise web.HTTPNotFound(text=f"{id!r} is not an id of {admin.verbose_name}") from None
    return await found.get()


def _specs(admin: ModelAdmin, *, editing: bool) -> tuple[forms.FieldSpec, ...]:
    """The form's inputs: of a new document (``editing`` false) or of a stored one."""
    return forms.describe(admin.model, admin.readonly(editing=editing))


async def _form_page(
    request: web.Request,
    admin: ModelAdmin,
    doc: Any,
    values: dict[str, Any],
    *,
    status: int = 200,
    errors: dict[str, list[str]] | None = None,
    general: list[str] | None = None,
    state: picker.PickState | None = None,
    version: str | None = None,
) -> web.Response:
    """The add or edit form. ``state``: what its reference pickers show (default: their first
    pages); ``version``: the lock's version the form was opened at (default: the document's)."""
    site = _site(request)
    specs = _specs(admin, editing=doc is not None)
    links = {}
    for spec in specs:
        target = site.admin_of(spec.target) if spec.kind == "reference" else None
        if target is not None and values.get(spec.name):
            links[spec.name] = site.url(target.slug, values[spec.name])
    meta = admin.model._meta
    if version is None and doc is not None and meta.optimistic_lock:
        version = str(getattr(doc, meta.version_field))
    state = state or picker.PickState()
    return _render(
        request,
        "form.html",
        status=status,
        admin=admin,
        doc=doc,
        specs=specs,
        values=values,
        errors=errors or {},
        general=general or [],
        pickers=await picker.pickers(site, specs, values, state),
        note=state.notice,
        links=links,
        version=version,
        blank_rows=forms.BLANK_ROWS,
    )


def _shown_all(specs: tuple[forms.FieldSpec, ...], source: Any) -> dict[str, Any]:
    values = {}
    for spec in specs:
        value = source.get(spec.name) if isinstance(source, dict) else getattr(source, spec.name)
        values[spec.name] = forms.shown(spec, value)
    return values


@routes.get("/{model}/add/")
async def add_form(request: web.Request) -> web.Response:
    """An empty form for a new document (defaults filled in where they are plain values)."""
    admin = _site(request).admin_for(request.match_info["model"])
    return await _form_page(
        request, admin, None, forms.defaults(admin.model, _specs(admin, editing=False))
    )


@routes.get("/{model}/{id:[^/]+}/")
async def detail_page(request: web.Request) -> web.Response:
    """A document, read-only: every field, references as links; links to edit and delete."""
    site = _site(request)
    admin = site.admin_for(request.match_info["model"])
    doc = await _load(admin, request.match_info["id"])
    fields = await detail.shown_document(site, admin.model, doc)
    return _render(request, "detail.html", admin=admin, doc=doc, fields=fields)


@routes.get("/{model}/{id:[^/]+}/edit/")
async def change_form(request: web.Request) -> web.Response:
    """A document in a form: every field, the writable ones as inputs."""
    admin = _site(request).admin_for(request.match_info["model"])
    doc = await _load(admin, request.match_info["id"])
    return await _form_page(request, admin, doc, _shown_all(_specs(admin, editing=True), doc))


@dataclass(frozen=True)
class _Errors:
    """The errors a posted form is shown with: by input name, and those that no one input
    holds (``general``); ``data`` is the form read back (:func:`forms.read_form`)."""

    specs: tuple[forms.FieldSpec, ...]
    data: dict[str, Any]
    by_input: dict[str, list[str]]
    general: list[str]

    def add(self, located: Iterable[writes.Located]) -> None:
        """Add messages by input name (see :func:`forms.error_place`), the others to
        ``general``; an input whose text could not be read keeps its own message alone
        (pydantic only saw that it was not a value)."""
        unreadable = forms.unparsed_paths(self.data)
        for loc, text in located:
            key, message = forms.error_place(loc, text, self.specs)
            if key in unreadable:
                continue
            shown = self.by_input.setdefault(key, []) if key else self.general
            if message not in shown:
                shown.append(message)


async def _write(
    document: Any,
    write: Coroutine[Any, Any, Any],
    page: Callable[..., Awaitable[web.Response]],
    found: _Errors,
) -> None:
    """Await ``write`` (``document``'s insert or save); a refused write raises
    :class:`FormRefused` with ``page`` (the form, showing ``found``), rendered once the unit of
    work has aborted.

    A value pydantic accepts may still be refused by the BSON encoder (a NUL in a key of a
    JSON value, an integer beyond 64 bits, a datetime past year 9999 in UTC): that error comes
    from the write, before anything is sent, and is shown at the input holding the value.
    A unique index another document holds is a DuplicateKey, or a write conflict when that
    document was written during this request's transaction: which index it breaks is then
    read once the transaction is over (a 409 either way).
    """
    try:
        await write
    except (ValidationError, OverflowError) as exc:
        unstorable = writes.unstorable_errors(exc, document)
        if unstorable is None:
            raise
        found.add(unstorable)
        raise FormRefused(page) from None
    except DuplicateKey as exc:
        found.add(writes.duplicate_errors(type(document), exc))
        raise FormRefused(functools.partial(page, status=409)) from None
    except PyMongoError as exc:
        if not writes.is_write_conflict(exc):
            raise
        stored = document.to_bson()

        async def clashed() -> web.Response:
            clashes = await writes.clash_errors(type(document), stored)
            found.add(clashes or [((), writes.CONFLICT_MESSAGE)])
            return await page(status=409)

        raise FormRefused(clashed) from None


async def _check_references(
    specs: tuple[forms.FieldSpec, ...],
    data: dict[str, Any],
    errors: dict[str, list[str]],
    prefix: str = "",
) -> None:
    """A reference must name an existing document of its target, wherever it is: at the top,
    in an embedded model or in a row of a list of them (``prefix``: the inputs' path). Only
    what was posted is checked (a dict, a row dict, an id's text): a value kept as stored, its
    inputs left out of the POST (:func:`forms.omitted`), is not the user's to answer for."""
    for spec in specs:
        value = data.get(spec.name)
        key = f"{prefix}{spec.name}"
        if spec.kind == "embedded" and isinstance(value, dict):
            await _check_references(spec.children, value, errors, f"{key}.")
        elif spec.kind == "embedded_list" and isinstance(value, list):
            for index, row in enumerate(value):
                if isinstance(row, dict):
                    await _check_references(spec.children, row, errors, f"{key}.{index}.")
        elif (
            spec.kind == "reference"
            and spec.target is not None
            and isinstance(value, str)
            and value
            and not await _exists(spec.target, value)
        ):
            errors.setdefault(key, []).append(f"no {spec.target.__name__} has the id {value!r}")


async def _exists(target: type[Any], id: Any) -> bool:
    """Tell whether a document of ``target`` has the id ``id`` (not one when it is no id)."""
    try:
        return bool(await target.objects.filter(id=id).exists())
    except QueryError:
        return False


async def _submitted(
    request: web.Request,
    admin: ModelAdmin,
    specs: tuple[forms.FieldSpec, ...],
    original: Any = forms.NO_ORIGINAL,
) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, str], picker.PickState | None]:
    """The posted form of ``specs`` read back: values by field, errors by input, the raw form,
    and the pickers' state when the form asks a picker for documents instead of being saved.
    ``original``: the stored document of an edit (a JSON input left as shown keeps its value)."""
    form = await request.post()
    forms.check_names(specs, [name for name, _ in form.items()])  # repeated ones too
    plain = _texts(form)
    forms.check_values(specs, plain)
    picker.check_searches(_site(request), specs, plain)
    data, read_errors = forms.read_form(specs, plain, original=original)
    errors = {key: [message] for key, message in read_errors.items()}
    state = picker.requested(plain, picker.picker_fields(specs))
    if state is None:
        await _check_references(specs, data, errors)
    return data, errors, plain, state


def _texts(form: Mapping[str, Any]) -> dict[str, str]:
    """The posted values by name; a file (a multipart part with a file name) is refused, by
    name: the form has no file input, and a value left out would keep the stored one."""
    for name, value in form.items():
        if not isinstance(value, str):
            raise forms.FormError(name, "a file was sent: the form has no file input")
    return dict(form)


@routes.post("/{model}/add/")
async def add(request: web.Request) -> web.StreamResponse:
    """Create a document; invalid values re-show the form with the errors by their fields."""
    site = _site(request)
    admin = site.admin_for(request.match_info["model"])
    specs = _specs(admin, editing=False)
    data, errors, _, state = await _submitted(request, admin, specs)
    if state is not None:
        return await _form_page(
            request, admin, None, _shown_all(specs, data), errors=errors, state=state
        )
    general: list[str] = []
    page = functools.partial(
        _form_page,
        request,
        admin,
        None,
        _shown_all(specs, data),
        status=400,
        errors=errors,
        general=general,
    )
    found = _Errors(specs, data, errors, general)
    try:
        doc = admin.model.model_validate(data)
    except ValidationError as exc:
        found.add(writes.pydantic_errors(exc, admin.model))
    else:
        if not errors:
            await _write(doc, doc.insert(), page, found)
            raise web.HTTPSeeOther(site.url(admin.slug, doc.id) + "?msg=created")
    return await page()


@routes.post("/{model}/{id:[^/]+}/edit/")
async def change(request: web.Request) -> web.StreamResponse:
    """Save the edited fields; a copy edited from a stale page is refused (409)."""
    site = _site(request)
    admin = site.admin_for(request.match_info["model"])
    doc = await _load(admin, request.match_info["id"])
    specs = _specs(admin, editing=True)
    data, errors, form, state = await _submitted(request, admin, specs, doc)
    # Only what the form does not write is the stored document's: a writable field whose
    # input was posted empty takes its default, as on a new document. One whose inputs are not
    # in the POST at all (a script, an old page) keeps its stored value, as Django's ModelForm
    # leaves a field omitted from the data (forms.omitted; inside an embedded model or a row
    # too, which read_form keeps as stored).
    writable = [
        spec.name
        for spec in specs
        if not spec.readonly and not forms.omitted(spec, form, spec.name)
    ]
    kept = {name: getattr(doc, name) for name in admin.model.model_fields if name not in writable}
    meta = admin.model._meta
    if state is not None:
        # The form goes on from the version it was opened at: the lock is checked on saving.
        opened = form.get("_version", "") if meta.optimistic_lock else None
        values = _shown_all(specs, {**kept, **data})
        return await _form_page(
            request, admin, doc, values, errors=errors, state=state, version=opened
        )
    if meta.optimistic_lock and form.get("_version") != str(getattr(doc, meta.version_field)):
        raise StaleDocument(f"{admin.verbose_name} {doc.id} was changed since the form was opened")
    general: list[str] = []
    values = _shown_all(specs, {**kept, **data})
    # The version the form was opened at, before the candidate's values are set on ``doc``.
    opened = str(getattr(doc, meta.version_field)) if meta.optimistic_lock else None
    page = functools.partial(
        _form_page,
        request,
        admin,
        doc,
        values,
        status=400,
        errors=errors,
        general=general,
        version=opened,
    )
    found = _Errors(specs, data, errors, general)
    try:
        candidate = admin.model.model_validate({**kept, **data})
    except ValidationError as exc:
        found.add(writes.pydantic_errors(exc, admin.model))
    else:
        if not errors:
            for name in writable:
                setattr(doc, name, getattr(candidate, name))
            await _write(doc, doc.save(), page, found)
            raise web.HTTPSeeOther(site.url(admin.slug, doc.id) + "?msg=saved")
    return await page()


@routes.get("/{model}/{id:[^/]+}/delete/")
async def delete_form(request: web.Request) -> web.Response:
    """Ask before deleting."""
    admin = _site(request).admin_for(request.match_info["model"])
    doc = await _load(admin, request.match_info["id"])
    return _render(request, "delete.html", admin=admin, doc=doc)


@routes.post("/{model}/{id:[^/]+}/delete/")
async def delete(request: web.Request) -> web.StreamResponse:
    """Delete the document, then show the list."""
    site = _site(request)
    admin = site.admin_for(request.match_info["model"])
    doc = await _load(admin, request.match_info["id"])
    await doc.delete()
    raise web.HTTPSeeOther(site.url(admin.slug) + "?msg=deleted")


async def migrations(request: web.Request) -> web.Response:
    """Applied, pending, changed and missing migrations (``odm migrate list``'s rows)."""
    from odm.migrations.runner import Runner

    site = _site(request)
    if site.migrations is None:
        raise web.HTTPNotFound(text="this admin was set up without a migrations directory")
    try:
        rows = await Runner(odm.get_database(), site.migrations).status()
    except MigrationError as exc:
        # A file that does not load (a syntax error, a bad name, a cycle): its message names
        # the file and line, which is what the reader has to fix.
        return error_page(request, 500, "A migration does not load", str(exc))
    return _render(request, "migrations.html", rows=rows, directory=site.migrations)
