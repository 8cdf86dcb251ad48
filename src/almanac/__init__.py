"""Almanac: self-hosted retrieval-augmented question answering over documents and databases."""

__version__ = "0.1.0"
