"""Settings from the environment (prefix ``PRODSEARCH_``) and an optional ``.env`` file.

``DATABASE_URL`` is read without prefix too, as most tools expect it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EncoderMode = Literal["exact", "bf16", "int8", "int8-static"]
ModeSetting = Literal["auto", "exact", "bf16", "int8", "int8-static"]  # auto: see embedding/modes
IndexType = Literal["vector", "halfvec"]
Engine = Literal["local", "ray"]

# the values a restricted setting or command-line option takes (checked while parsing)
ENCODER_MODES: tuple[EncoderMode, ...] = get_args(EncoderMode)
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)
ENGINES: tuple[str, ...] = get_args(Engine)


def encoder_mode(value: str) -> EncoderMode:
    """``value`` as an encoder mode (ValueError when it is none)."""
    for mode in ENCODER_MODES:
        if value == mode:
            return mode
    raise ValueError(f"unknown encoder mode {value!r}: use one of {', '.join(ENCODER_MODES)}")


SearchMode = Literal["semantic", "filtered", "hybrid"]
ImportFormat = Literal["csv", "tsv", "jsonl", "parquet"]
SEARCH_ENDPOINTS = ("semantic", "filtered", "hybrid", "similar", "suggest")
JUDGED_MODES = ("semantic", "hybrid", "lexical", "exact", "semantic_no_map")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# bounds of reciprocal rank fusion's k: the setting, the API field and the service share them
RRF_K_MIN, RRF_K_MAX = 1, 1000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PRODSEARCH_", env_file=".env", extra="ignore", populate_by_name=True
    )

    home: Path = Field(
        default=Path(".prodsearch"),
        description="Database files (pg/) and logs (logs/).",
    )
    model_cache: Path | None = Field(
        default=None,
        description="Where model exports are cached (default: the user's cache folder, "
        "$XDG_CACHE_HOME/prodsearch/models or ~/.cache/prodsearch/models, shared by every "
        "home: an export is made once per machine and checked against its manifest).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PRODSEARCH_DATABASE_URL"),
        description="External PostgreSQL with pgvector >= 0.8; unset = embedded server.",
    )
    read_database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("READ_DATABASE_URL", "PRODSEARCH_READ_DATABASE_URL"),
        description="API: a read replica for search traffic (migrations and writes still "
        "use DATABASE_URL); unset = DATABASE_URL.",
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Bundled model name, or a local sentence-transformers model directory.",
    )
    mode: ModeSetting = Field(
        default="auto",
        description="Encoder precision of the documents: auto|exact|bf16|int8|int8-static. "
        "auto: the mode the catalog was first embedded in, recorded in the database; a first "
        "embed chooses for its CPU: bf16 (OpenVINO) with AMX, int8-static (OpenVINO, NNCF "
        "int8) without. Both score the nDCG of exact (docs/BENCHMARKS.md). An explicit "
        "mode other than the recorded one makes `embed` re-embed the catalog in it.",
    )
    query_mode: EncoderMode = Field(
        default="int8",
        description="Encoder precision for search queries (documents use mode): int8 embeds a "
        "query faster than exact at no measured relevance cost (docs/BENCHMARKS.md).",
    )
    batch_size: int = Field(default=64, ge=1, le=4096, description="Texts per encoder batch.")
    hnsw_m: int = Field(
        default=16,
        ge=2,
        le=100,
        description="HNSW links per node (16 gives the most recall per millisecond at 278k "
        "products; see BENCHMARKS.md).",
    )
    hnsw_ef_construction: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="HNSW build candidate list; 0 = sized to the number of vectors at build "
        "time: the cheapest that keeps ε-recall@10 ≥ 0.99 (64 up to 25,000 vectors, "
        "128 up to 50,000, 320 above; see BENCHMARKS.md).",
    )
    hnsw_insert_ef_construction: int = Field(
        default=128,
        ge=0,
        le=1000,
        description="HNSW candidate list of every write into a built index (the watch "
        "worker, small embeds) and of its graph repairs, when below the build's; 0 = the "
        "build's. A narrower list makes inserts cheaper at the same recall (BENCHMARKS.md).",
    )
    index_type: IndexType = Field(
        default="halfvec",
        description="HNSW over the stored vectors, or over a halfvec expression (half the size).",
    )
    ef_search: int = Field(
        default=300,
        ge=1,
        le=1000,
        description="hnsw.ef_search at query time (the default keeps ε-recall@10 ≥ 0.99 and "
        "the nDCG of exact search at the default build; see BENCHMARKS.md).",
    )
    exact_filter_rows: int = Field(
        default=20_000,
        ge=0,
        le=10_000_000,
        description="Filtered search is exact (no index) when the planner expects at most this "
        "many matching products; above it, an iterative HNSW scan.",
    )
    query_cache_size: int = Field(
        default=4096, ge=0, description="LRU of query embeddings in the API (0 disables)."
    )
    rrf_k: int = Field(
        default=60, ge=RRF_K_MIN, le=RRF_K_MAX, description="Reciprocal rank fusion k."
    )
    lexical_weight: float = Field(
        default=2.0,
        ge=0,
        le=10,
        description="Weight of the full-text leg in hybrid fusion when it represents the whole "
        "query; the next four settings scale it down when it does not (see README).",
    )
    fusion_coverage_power: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="Hybrid: the full-text weight is multiplied by the share of query words "
        "it kept (dropped as unknown: 0, corrected: 1/2) to this power.",
    )
    fusion_specific_idf: float = Field(
        default=3.0,
        ge=0,
        le=20,
        description="Hybrid: the full-text weight is multiplied by the rarest query word's "
        "IDF over this (capped at 1), so only-common words weigh less; 0 = off (3.0 fitted "
        "on the judged queries: bench relevance --tune).",
    )
    fusion_loose_weight: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Hybrid: multiplies the full-text weight when no product has every "
        "query word and the leg falls back to any word.",
    )
    fusion_agreement_floor: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Hybrid: the full-text weight at no agreement with the semantic leg; "
        "it rises linearly to 1 as more of the leg's top 10 are semantic candidates.",
    )
    synonyms: str | None = Field(
        default=None,
        description="Synonyms file for query expansion (see README); unset = the shipped "
        "auto-parts set, empty file = none.",
    )
    vehicle_column: str = Field(
        default="vehicle",
        description="Source column naming the vehicle a product fits (vehicle-aware ranking); "
        "ignored when the table has no such column.",
    )
    brand_column: str = Field(
        default="brand",
        description="Source column of the product's brand: a brand named in a query "
        "(folded: lemforder is Lemförder) becomes a constraint; ignored when absent.",
    )
    engine_column: str = Field(
        default="engine",
        description="Source column of the engine a product fits (e.g. 2.0 TDI): an engine "
        "named in a query becomes a constraint; ignored when absent.",
    )
    position_column: str = Field(
        default="position",
        description="Source column of the side a product fits (e.g. Front Left): side words "
        "in a query (przedni, rear, lewy, …) become a constraint; ignored when absent.",
    )
    price_column: str = Field(
        default="price",
        description="Source column of the price: a price in a query (under 40, do 100 zł, "
        "40-80 zł) becomes a bound on it; ignored when absent.",
    )
    currency_column: str = Field(
        default="currency",
        description="Source column of the price's currency (reported with an understood "
        "price); ignored when absent.",
    )
    position_words: str | None = Field(
        default=None,
        description="File of the words shoppers type for each side (format in "
        "search/data/positions.txt); unset = the shipped English and Polish words.",
    )
    vehicle_boost: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Semantic search: added to the similarity of products that fit the "
        "vehicle the query names.",
    )
    vehicle_boost_hybrid: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Hybrid search: added to the fused score of products that fit the "
        "vehicle the query names.",
    )
    host: str = Field(default="127.0.0.1", description="API bind address.")
    port: int = Field(default=8000, ge=1, le=65535, description="API port.")
    api_key: SecretStr | None = Field(
        default=None, description="When set, search endpoints require header X-API-Key."
    )
    request_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="API: the longest a search waits for a database connection, and its "
        "statement timeout; past it the answer is 503, never a hang.",
    )
    max_body_bytes: int = Field(
        default=65_536, ge=1024, description="API: larger request bodies get 413."
    )
    cors_origins: str | None = Field(
        default=None,
        description="API: comma-separated origins allowed by CORS (`*` for any); unset = CORS off.",
    )
    db_retry_s: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="embed: how long a lost database connection is retried (backoff 0.5 s "
        "doubling to 5 s) before the run stops; committed chunks are kept.",
    )
    lock_wait_s: float = Field(
        default=600.0,
        ge=0,
        le=86_400,
        description="embed: how long a run waits for another run on the same database "
        "to finish before it gives up.",
    )
    watch_batch_rows: int = Field(
        default=2048,
        ge=1,
        le=100_000,
        description="watch: queued ids per batch (one transaction); a burst drains in "
        "batches of this size.",
    )
    watch_batch_ms: int = Field(
        default=50,
        ge=0,
        le=60_000,
        description="watch: after a notification, how long changes gather before a batch.",
    )
    watch_poll_s: float = Field(
        default=5.0,
        gt=0,
        le=86_400,
        description="watch: how often the queue is checked without a notification (and "
        "the interval of --poll mode).",
    )
    watch_reconcile_s: float = Field(
        default=900.0,
        ge=0,
        le=604_800,
        description="watch: how often the embed plan runs to catch what capture missed "
        "(0 = never).",
    )
    watch_support_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="watch: how often the typo vocabulary is refreshed after changes.",
    )
    watch_threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="watch: inference threads of the worker, one stream each (0 = every "
        "CPU here: at the worker's niceness searches keep their latency; docs/BENCHMARKS.md).",
    )
    watch_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="watch: the worker's CPU niceness (Linux), also given to its database "
        "sessions where the server runs on this machine: on cores shared with the API, "
        "searches get the CPU first and the worker (with its HNSW inserts) takes the rest.",
    )
    watch_max_tries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="watch: a product whose write keeps failing (a trigger, a constraint, "
        "a timeout) is set aside among the failed items after this many tries; the rest "
        "of the queue flows on.",
    )
    watch_retry_s: float = Field(
        default=5.0,
        ge=0,
        le=86_400,
        description="watch: a failed product's first retry comes after this, doubling "
        "with each try.",
    )
    lag_degraded_s: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="/health: the oldest pending change older than this marks freshness "
        "degraded (a field a load balancer can ignore).",
    )
    text_fields: str = Field(
        default="name,description",
        description="Comma-separated source columns joined into the text that is embedded.",
    )
    max_chars: int = Field(default=2000, ge=16, description="Character cap on prepared text.")
    max_tokens: int = Field(
        default=96,
        ge=8,
        le=8192,
        description="Token cap on the text an embedding is computed from (the model's own "
        "limit when lower). The name comes first, so a cut shortens the description (the "
        "full-text index keeps all of it); the default embeds faster than 128 or 256 at "
        "the same judged relevance (docs/BENCHMARKS.md).",
    )
    source_table: str = Field(
        default="staging_marts.dim_product", description="Catalog table, schema-qualified."
    )
    source_id_column: str = Field(default="product_id", description="BIGINT id column.")
    source_deleted: str = Field(
        default="is_deleted",
        description="Soft-delete predicate: COL, NOT COL, COL IS NULL, COL IS NOT NULL, or empty.",
    )
    search_fields: str = Field(
        default="name,polish_name,description,polish_description",
        description="Columns indexed for full-text (hybrid) search; those that exist are used.",
    )
    code_columns: str = Field(
        default="sku,part_number",
        description="Product-code columns for exact-match lookup; those that exist are used.",
    )
    filter_columns: str = Field(
        default="category,brand,price,in_stock",
        description="Source columns that search filters may use.",
    )

    @field_validator(
        "database_url",
        "read_database_url",
        "api_key",
        "synonyms",
        "position_words",
        "model_cache",
        "cors_origins",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def pg_dir(self) -> Path:
        return self.home_dir / "pg"

    @property
    def models_dir(self) -> Path:
        if self.model_cache is not None:
            return self.model_cache.expanduser().resolve()
        return user_cache() / "models"

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / "logs"

    def as_env(self) -> dict[str, str | None]:
        """These settings as the environment of a child process (``prodsearch serve``,
        ``watch``, ``embed`` started by a benchmark): ``PRODSEARCH_<NAME>`` for every
        field, None for one that is unset (to be removed from the child's environment),
        so the child runs with what the parent was given, not with what it reads."""
        out: dict[str, str | None] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            key = f"PRODSEARCH_{name.upper()}"
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            out[key] = None if value is None else str(value)
        for alias in ("DATABASE_URL", "READ_DATABASE_URL"):  # they win over the prefixed
            out[alias] = out[f"PRODSEARCH_{alias}"]
        return out

    def masked(self) -> dict[str, Any]:
        """Effective settings with secrets masked, for `prodsearch config`."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                url = name in ("database_url", "read_database_url")
                value = mask_url(value.get_secret_value()) if url else "****"
            out[name] = str(value) if isinstance(value, Path) else value
        out["home (resolved)"] = str(self.home_dir)
        return out


def user_cache() -> Path:
    """This user's cache folder for prodsearch (the XDG base directory convention)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "prodsearch"


def mask_url(url: str) -> str:
    """A connection URL safe to print: the password hidden, the rest readable."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def quiet_model_libraries() -> None:
    """Offline, and no download or loading progress bars from the model libraries."""
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TOKENIZERS_PARALLELISM": "true",
    }.items():
        os.environ.setdefault(key, value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, read once (changes nothing)."""
    return Settings()
