"""Clients: the OpenAI-compatible chat client (the reward's judge, the evaluation's judge and
policy server), the embedder (a local sentence-transformers model or a remote ``/v1/embeddings``
endpoint) and the one retry policy they share. No verl, no reward logic."""
