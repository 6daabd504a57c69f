"""Search-as-you-type: query completions built from the catalog (``GET /suggest``)."""
