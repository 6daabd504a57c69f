"""Search: semantic, filtered, hybrid (RRF) and similar-product queries."""

from prodsearch.errors import SearchError
from prodsearch.search.results import SearchResponse
from prodsearch.search.service import Searcher

__all__ = ["SearchError", "SearchResponse", "Searcher"]
