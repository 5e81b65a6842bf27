"""odm: a Django-style async ODM for MongoDB, on pydantic v2 and PyMongo's async API.

This module re-exports the public names of the API (see ``docs/``); nothing else lives here.
"""

from . import signals
from ._version import __version__
from .blocks import atomic, run_in_transaction, transaction
from .changestream import ChangeEvent, ChangeStream
from .connection import (
    Connection,
    Retry,
    disconnect,
    get_client,
    get_connection,
    get_database,
)
from .document import Document, Embedded
from .exceptions import (
    AlreadyConnected,
    ConfigurationError,
    ConnectionFailed,
    DeclarationError,
    DoesNotExist,
    DuplicateKey,
    IndexConflict,
    Invalid,
    MigrationError,
    MultipleObjectsReturned,
    NotConnected,
    OdmError,
    OnCommitError,
    OperationTimeout,
    QueryError,
    ServerNotFound,
    StaleDocument,
    TransactionError,
    TransactionsNotSupported,
    UnsavedReference,
    ValidationError,
)
from .jsonable import to_jsonable
from .models.fields import Decimal, Field, Indexed, ObjectId, Reference, utcnow
from .models.geo import (
    Geometry,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
)
from .models.indexes import Index
from .query import F, Greatest, Least, Now, Q
from .query.extras import annotations_of
from .query.geo import Box, Circle, Near
from .queryset import Manager, QuerySet
from .registry import registry
from .schema import ensure_indexes
from .session import current_session, session
from .startup import connect
from .timeouts import operation_timeout
from .uow import UnitOfWork

__all__ = [
    "AlreadyConnected",
    "Box",
    "ChangeEvent",
    "ChangeStream",
    "Circle",
    "ConfigurationError",
    "Connection",
    "ConnectionFailed",
    "Decimal",
    "DeclarationError",
    "Document",
    "DoesNotExist",
    "DuplicateKey",
    "Embedded",
    "F",
    "Field",
    "Geometry",
    "Greatest",
    "Index",
    "IndexConflict",
    "Indexed",
    "Invalid",
    "Least",
    "LineString",
    "Manager",
    "MigrationError",
    "MultiLineString",
    "MultiPoint",
    "MultiPolygon",
    "MultipleObjectsReturned",
    "Near",
    "NotConnected",
    "Now",
    "ObjectId",
    "OdmError",
    "OnCommitError",
    "OperationTimeout",
    "Point",
    "Polygon",
    "Q",
    "QueryError",
    "QuerySet",
    "Reference",
    "Retry",
    "ServerNotFound",
    "StaleDocument",
    "TransactionError",
    "TransactionsNotSupported",
    "UnitOfWork",
    "UnsavedReference",
    "ValidationError",
    "__version__",
    "annotations_of",
    "atomic",
    "connect",
    "current_session",
    "disconnect",
    "ensure_indexes",
    "get_client",
    "get_connection",
    "get_database",
    "operation_timeout",
    "registry",
    "run_in_transaction",
    "session",
    "signals",
    "to_jsonable",
    "transaction",
    "utcnow",
]
