"""One-shot search: a weight-sharing BNext supernet, its training, and scoring candidates with inherited weights."""
