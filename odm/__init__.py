"""odm: a Django-style async ODM for MongoDB, on pydantic v2 and PyMongo's async API.

This module re-exports the public names of the API (see ``docs/``); nothing else lives here.
"""

from ._version import __version__
from .connection import (
    Connection,
    Retry,
    connect,
    disconnect,
    get_client,
    get_connection,
    get_database,
)
from .exceptions import (
    AlreadyConnected,
    ConfigurationError,
    ConnectionFailed,
    DeclarationError,
    DoesNotExist,
    DuplicateKey,
    Invalid,
    MigrationError,
    MultipleObjectsReturned,
    NotConnected,
    OdmError,
    OperationTimeout,
    QueryError,
    ServerNotFound,
    StaleDocument,
    TransactionError,
    TransactionsNotSupported,
    ValidationError,
)
from .timeouts import operation_timeout

__all__ = [
    "AlreadyConnected",
    "ConfigurationError",
    "Connection",
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
    "Retry",
    "ServerNotFound",
    "StaleDocument",
    "TransactionError",
    "TransactionsNotSupported",
    "ValidationError",
    "__version__",
    "connect",
    "disconnect",
    "get_client",
    "get_connection",
    "get_database",
    "operation_timeout",
]
