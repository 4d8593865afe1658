"""Reports and figures made from the results store."""
