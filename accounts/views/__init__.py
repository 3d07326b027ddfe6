"""Pages of the case review: the queue (`queue`), the case page and its actions (`case`), events (`events`)."""
