"""Call flows: the YAML language (loader), matching (nlu) and the pure interpreter."""
