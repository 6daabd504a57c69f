"""Search: semantic, filtered, hybrid (RRF) and similar-product queries."""

from prodsearch.search.results import SearchError, SearchResponse
from prodsearch.search.service import Searcher

__all__ = ["SearchError", "SearchResponse", "Searcher"]
