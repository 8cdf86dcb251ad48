"""Documents and database rows -> chunks -> vectors -> catalog + FAISS index (the only writer)."""
