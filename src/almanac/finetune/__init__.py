"""QA generation from the corpus, curation, LoRA training, evaluation and the adapter registry."""
