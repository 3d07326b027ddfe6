"""Reads that span models, for pages and jobs: the queue (`queue`) and the case page (`case`)."""
