"""Every exception the ODM raises on purpose, in one small hierarchy.

All of them derive from :class:`OdmError`, so ``except odm.OdmError`` catches what the ODM means
to raise; driver and pydantic errors that the ODM does not translate pass through unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError


class OdmError(Exception):
    """Base class of every error the ODM raises itself."""


class ConfigurationError(OdmError):
    """A setting, a connection alias or a declaration is wrong or missing."""


class ConnectionFailed(OdmError):
    """The server could not be reached after every retry; names the address and the cause."""

    def __init__(self, address: str, cause: BaseException | str, attempts: int = 1) -> None:
        self.address = address
        self.cause = cause
        self.attempts = attempts
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(
            f"could not connect to MongoDB at {address} after {attempts} attempt(s): {reason}"
        )


class AlreadyConnected(ConfigurationError):
    """``connect`` was called twice for the same alias."""


class NotConnected(ConfigurationError):
    """An operation needed a connection that no ``connect`` call has made."""


class ServerNotFound(ConfigurationError):
    """No ``mongod`` binary could be found to start a local server."""


class DeclarationError(ConfigurationError):
    """A Document class was declared wrongly; raised at class creation, naming class and field."""


class IndexConflict(ConfigurationError):
    """An index exists on the server with the declared name (or keys) but other options."""


class QueryError(OdmError):
    """A filter, lookup or update cannot be built: unknown field, wrong type, unsafe value."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class UnsavedReference(QueryError):
    """A document about to be written refers to a document that was never stored: its id would
    point nowhere. ``field`` names the reference (``customer``, ``watchers[1]``,
    ``lines[0].product``)."""


class DoesNotExist(OdmError):
    """No document matched a query that needed one; each model has its own subclass
    (``Model.DoesNotExist``), whose :attr:`model` is that model."""

    #: The model whose query found nothing (``None`` on this base class, raised by hand).
    model: ClassVar[type[Any] | None] = None


class MultipleObjectsReturned(OdmError):
    """More than one document matched a query that needed exactly one."""


class StaleDocument(OdmError):
    """An optimistic-lock save found that someone else changed the document since it was loaded."""


class DuplicateKey(OdmError):
    """A write broke a unique index; what clashed is data, not only text.

    - ``model``: the Document class written (``None`` when raised by hand);
    - ``collection``: its collection's name;
    - ``index``: the name of the unique index (``"email_1"``), ``None`` when the server did
      not say;
    - ``key``: the duplicated values keyed by field, spelled as ``filter()`` takes them
      (``{"email": "a@x.io"}``, ``{"id": ...}``, ``{"address__city": ...}``), so that
      ``Model.objects.get(**exc.key)`` reads the document already holding them; ``{}`` when
      the server did not say;
    - ``fields``: the index's fields in the same spelling, in the index's order.
    """

    def __init__(
        self,
        message: str,
        *,
        model: type[Any] | None = None,
        collection: str | None = None,
        index: str | None = None,
        key: dict[str, Any] | None = None,
        fields: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.collection = collection
        self.index = index
        self.key: dict[str, Any] = dict(key or {})
        self.fields = tuple(fields)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only data survives pickling (exceptions are pickled by their args alone).
        return (_rebuild_duplicate, (str(self), self.__dict__))


def _rebuild_duplicate(message: str, state: dict[str, Any]) -> DuplicateKey:
    error = DuplicateKey(message)
    error.__dict__.update(state)
    return error


class OperationTimeout(OdmError):
    """An operation did not finish within its ``timeout=``."""


class TransactionError(OdmError):
    """A transaction could not be started, joined or finished."""


class OnCommitError(OdmError):
    """An ``on_commit`` callback failed after its transaction committed (the transaction stays
    committed; the callback's own exception is the ``__cause__``)."""


class TransactionsNotSupported(TransactionError):
    """The server (a standalone ``mongod``, for one) cannot run multi-document transactions."""


class MigrationError(OdmError):
    """A migration could not be loaded, planned, applied or rolled back."""


class Invalid:
    """A stored document that failed validation, yielded by ``.lenient()`` querysets.

    ``raw`` is the document as stored and ``error`` the pydantic ``ValidationError``.
    """

    __slots__ = ("error", "raw")

    def __init__(self, raw: dict[str, Any], error: ValidationError) -> None:
        self.raw = raw
        self.error = error

    def __repr__(self) -> str:
        return f"Invalid(_id={self.raw.get('_id')!r}, errors={self.error.error_count()})"


STORED_DOCUMENT_MARK = " document _id="
"""What the title of the ``ValidationError`` of a stored document that does not fit its model
holds after the model's name (``"Customer document _id=ObjectId('...')"``); a class name
holds no space, so no model's own validation title has it."""


def is_stored_document_error(error: ValidationError) -> bool:
    """Tell whether ``error`` says that a document read from the database does not fit its
    model (odm names the model and the ``_id`` in its title): the stored data is at fault, not
    the input of a request (an HTTP API answers 500, not 400)."""
    return STORED_DOCUMENT_MARK in error.title


__all__ = [
    "STORED_DOCUMENT_MARK",
    "AlreadyConnected",
    "ConfigurationError",
    "ConnectionFailed",
    "DeclarationError",
    "DoesNotExist",
    "DuplicateKey",
    "Invalid",
    "MigrationError",
    "MultipleObjectsReturned",
    "NotConnected",
    "OdmError",
    "OperationTimeout",
    "QueryError",
    "ServerNotFound",
    "StaleDocument",
    "TransactionError",
    "TransactionsNotSupported",
    "UnsavedReference",
    "ValidationError",
    "is_stored_document_error",
]
