"""Search: semantic, filtered, hybrid (RRF) and similar-product queries."""

from prodsearch.search.service import Searcher, SearchError, SearchResponse

__all__ = ["SearchError", "SearchResponse", "Searcher"]
