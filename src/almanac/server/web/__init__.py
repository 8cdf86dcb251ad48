"""The web page for people: ask questions, add and remove documents, in a browser (no build step)."""
