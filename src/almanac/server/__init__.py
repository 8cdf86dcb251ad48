"""FastAPI app: retrieval, SQL lookups, answering, OpenAI compatibility, jobs."""
