"""The one error hierarchy of Almanac. Every message says what is wrong and what to do next.

    AlmanacError                 base; never raised itself
    ├── ConfigError              settings that cannot work (bad model path, bad URL)
    ├── InputError               bad input from a user: file, table, request field
    │   ├── UnsupportedFileError     a file type the indexer cannot read
    │   ├── FileTooLargeError        a file over ingest.max_file_bytes
    │   ├── UnreadableFileError      corrupt, encrypted or unreadable file
    │   └── LimitError               a request over a server limit
    ├── NotFoundError            a collection, document, adapter or job that does not exist
    ├── SourceError              a source database that cannot be reached or read
    │   └── UnknownTableError        a table that is absent or not allow-listed
    ├── IndexMismatchError       the index was built with another embedding model or dimension
    ├── LockedError              another writer holds ALMANAC_HOME
    ├── AuthError                missing or wrong API key (401)
    │   └── ForbiddenError           a key without the scope (403)
    ├── OverloadedError          the model queue is full (429 with Retry-After)
    │   └── ModelUnavailableError    the model server is down, busy or too slow (503 with Retry-After);
    │                                also a ModelError: a generation that could not run
    └── ModelError               a model that cannot be loaded or a generation that failed
        └── AdapterMismatchError     an adapter trained on another base model

The server maps these to HTTP statuses in one place (server/errors.py).
"""

from __future__ import annotations


class AlmanacError(Exception):
    """Base of every error Almanac raises on purpose."""


class ConfigError(AlmanacError):
    """Settings that cannot work."""


class InputError(AlmanacError):
    """Bad input from a user."""


class UnsupportedFileError(InputError):
    """A file type the indexer cannot read."""


class FileTooLargeError(InputError):
    """A file over the size limit."""


class UnreadableFileError(InputError):
    """A corrupt, encrypted or otherwise unreadable file."""


class LimitError(InputError):
    """A request over a server limit."""


class NotFoundError(AlmanacError):
    """Something asked for by name or id does not exist."""


class SourceError(AlmanacError):
    """A source database that cannot be reached or read."""


class UnknownTableError(SourceError):
    """A table that is absent, has no primary key, or is not allow-listed."""


class IndexMismatchError(AlmanacError):
    """The stored index was built with another embedding model or dimension."""


class LockedError(AlmanacError):
    """Another writer holds the lock on ALMANAC_HOME."""


class AuthError(AlmanacError):
    """A missing or wrong API key."""


class ForbiddenError(AuthError):
    """A valid key without the scope the call needs."""


class OverloadedError(AlmanacError):
    """The model queue is full; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelError(AlmanacError):
    """A model that cannot be loaded or a generation that failed."""


class ModelUnavailableError(OverloadedError, ModelError):
    """The model server (an OpenAI-compatible backend) cannot answer now; retry after `retry_after` s."""


class AdapterMismatchError(ModelError):
    """An adapter trained on another base model."""
