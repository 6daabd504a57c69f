"""Constraints a shopper types beside the product: a price, a side of the car, an engine,
a brand, a vehicle — found in the query and taken out of its text.

"cheap wiper blades under 40 zl" is the product "wiper blades" and the constraint
``price_max = 40``: the "40" must never match a part number, and a wiper blade of 60 zł
is a wrong result. What is understood comes from the catalog's own columns (the brands,
engines and position words it holds: :class:`CatalogVocabulary`), so another catalog
works without code; only the words for a price and for a side are language knowledge
(``search/data/positions.txt`` and the cue lists below).

A word that could be a constraint or plain text is decided by measurement: a brand word
that the catalog's texts use in many more products than the brand has (``Gates`` as a
word, not the brand) stays text, and :attr:`Understood.decisions` says so. A number is a
price only beside a price cue or a currency, never a size ("5l", "12v").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

from prodsearch.catalog.lexical import fold
from prodsearch.jsonvalue import JsonObject

Constraint = Literal["price", "vehicle", "position", "engine", "brand"]
# relaxed first when the constraints together find nothing: the least certain first
CONSTRAINTS: tuple[Constraint, ...] = get_args(Constraint)
RELAX_ORDER: tuple[Constraint, ...] = ("position", "engine", "brand", "vehicle", "price")

# raw tokens: a number (decimal point or comma kept), a run of letters, or a price symbol;
# "2.0tdi", "100zł" and "40-80" split at the letter / digit and dash boundaries
_WORD = re.compile(r"[^\W_]")
_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)?")
_RAW = re.compile(r"[0-9]+(?:[.,][0-9]+)?|[^\W\d_]+|\d|[<>≤≥€$–-]|=")

_CURRENCY = {
    "zl": "PLN",
    "zlotych": "PLN",
    "zloty": "PLN",
    "zlote": "PLN",
    "pln": "PLN",
    "eur": "EUR",
    "euro": "EUR",
    "€": "EUR",
    "usd": "USD",
    "$": "USD",
}
# what follows a number that is a size, not a price
_UNITS = frozenset(
    [
        "mm",
        "cm",
        "m",
        "l",
        "ml",
        "v",
        "w",
        "kw",
        "km",
        "ah",
        "a",
        "nm",
        "bar",
        "kg",
        "g",
        "cc",
        "x",
        "szt",
        "st",
        "pcs",
        "psi",
        "hp",
        "w20",
        "w30",
        "w40",
    ]
)


def _cues(*phrases: str) -> tuple[tuple[str, ...], ...]:
    """Cue phrases as the folded token sequences a query holds."""
    return tuple(tuple(p.split()) for p in phrases)


_MAX_CUES = _cues(
    "under",
    "below",
    "less than",
    "cheaper than",
    "up to",
    "upto",
    "max",
    "maks",
    "maksymalnie",
    "najwyzej",
    "do",
    "ponizej",
    "mniej niz",
    "taniej niz",
    "nie drozej niz",
    "nie wiecej niz",
    "< =",
    "<",
    "≤",
    "within",
)
_MIN_CUES = _cues(
    "over",
    "above",
    "more than",
    "at least",
    "from",
    "min",
    "minimum",
    "od",
    "powyzej",
    "ponad",
    "wiecej niz",
    "drozej niz",
    "co najmniej",
    "> =",
    ">",
    "≥",
)
_RANGE_JOIN = frozenset(["-", "–", "do", "to", "and", "a", "i"])
_RANGE_START = _cues("od", "from", "between", "miedzy", "pomiedzy")
# a preference, not a bound: the word leaves the query (no product says "cheap")
_CHEAP = frozenset(
    [
        "cheap",
        "cheapest",
        "cheaper",
        "budget",
        "inexpensive",
        "tani",
        "tania",
        "tanie",
        "tanio",
        "tanich",
        "tanszy",
        "tansze",
        "tansza",
        "najtanszy",
        "najtansze",
        "najtansza",
        "najtanszych",
    ]
)
# "do" is also "for" ("klocki do golfa"): a bare "do 7" is no price, "do 40" and
# "do 7 zł" are
_WEAK_CUES = frozenset(["do", "od", "from", "a", "i"])
_WEAK_MIN_VALUE = 10.0
MAX_PRICE_DIGITS = 12  # "under 99999999999999999999" is no price (nor a finite bound)
AMBIGUOUS_RATIO = 1.5  # a brand word in more products' texts than this × the brand's: text


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # folded
    start: int
    end: int

    @property
    def number(self) -> float | None:
        if _NUMBER.fullmatch(self.text) and len(self.text) <= MAX_PRICE_DIGITS:
            return float(self.text.replace(",", "."))
        return None  # a word, or a number too long to be a price (a code, a barcode)


def raw_tokens(text: str) -> list[_Token]:
    """The query's words, numbers and price symbols, folded, with their spans."""
    return [_Token(fold(m.group()), m.start(), m.end()) for m in _RAW.finditer(text)]


def _key(text: str) -> tuple[str, ...]:
    """A catalog value as the token sequence a query would hold ("2.0 TDI" → 2.0, tdi)."""
    return tuple(t.text.replace(",", ".") for t in raw_tokens(text) if t.text not in "-–")


def load_position_words(path: str | Path | None = None) -> dict[str, str]:
    """Typed form → the catalog's word for that side (``przedni`` → ``front``)."""
    if path is None:
        text = (resources.files("prodsearch.search") / "data" / "positions.txt").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        canonical, forms = line.split(":", 1)
        for form in forms.split():
            out[fold(form)] = fold(canonical.strip())
    return out


@dataclass(frozen=True)
class Decision:
    """A word that could have been a constraint or text, and what it was taken as."""

    word: str
    taken_as: str  # "brand" or "text"
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"word": self.word, "taken_as": self.taken_as, "why": self.why}


@dataclass(frozen=True)
class Understood:
    """What the query says beside the product; ``residual`` is the query without it."""

    residual: str  # the query without any constraint words
    described: str = ""  # the query without its price (attribute words kept)
    price_min: float | None = None
    price_max: float | None = None
    currency: str | None = None
    positions: tuple[str, ...] = ()  # the catalog's words for the sides, e.g. rear, right
    engine: str | None = None  # the catalog's value, e.g. "2.0 TDI"
    brand: str | None = None  # the catalog's value, e.g. "Lemförder"
    vehicles: tuple[str, ...] = ()  # the catalog's vehicle names the query names
    cheap: bool = False
    removed: tuple[str, ...] = ()  # the words taken out of the text
    decisions: tuple[Decision, ...] = ()

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        out: list[Constraint] = []
        if self.price_min is not None or self.price_max is not None:
            out.append("price")
        if self.vehicles:
            out.append("vehicle")
        if self.positions:
            out.append("position")
        if self.engine:
            out.append("engine")
        if self.brand:
            out.append("brand")
        return tuple(out)

    @property
    def attributes(self) -> tuple[Constraint, ...]:
        """The constraints on the product's own attributes (all but the price)."""
        return tuple(c for c in self.constraints if c != "price")

    def as_dict(self) -> JsonObject:
        """The response's ``understood`` field: only what was found."""
        out: JsonObject = {}
        if self.price_min is not None:
            out["price_min"] = self.price_min
        if self.price_max is not None:
            out["price_max"] = self.price_max
        if "price" in self.constraints and self.currency:
            out["currency"] = self.currency
        if self.positions:
            out["position"] = list(self.positions)
        if self.engine:
            out["engine"] = self.engine
        if self.brand:
            out["brand"] = self.brand
        if self.vehicles:
            out["vehicle"] = list(self.vehicles)
        if self.cheap:
            out["cheap"] = True
        return out


@dataclass
class CatalogVocabulary:
    """The constraint values the catalog holds, loaded with the search vocabulary."""

    brands: Mapping[str, int] = field(default_factory=dict)  # brand -> live products
    engines: Iterable[str] = ()
    position_values: Iterable[str] = ()
    currency: str | None = None
    position_words: Mapping[str, str] = field(default_factory=dict)
    word_products: Callable[[str], int] = lambda _w: 0  # products whose text has the word

    def __post_init__(self) -> None:
        self._engines: dict[tuple[str, ...], str] = {}
        for value in self.engines:
            key = _key(value)
            if len("".join(key)) >= 3:  # "B4" alone is too short to tell from a code
                self._engines.setdefault(key, value)
        self._brands: dict[tuple[str, ...], str] = {}
        firsts: dict[str, list[str]] = {}
        for value in self.brands:
            key = _key(value)
            if key:
                self._brands.setdefault(key, value)
                if len(key) > 1 and len(key[0]) >= 4:
                    firsts.setdefault(key[0], []).append(value)
        for word, values in firsts.items():  # "mann" is Mann-Filter, "febi" Febi Bilstein
            if len(values) == 1 and (word,) not in self._brands:
                self._brands[(word,)] = values[0]
        sides = {w for v in self.position_values for w in fold(v).split()}
        self._sides = {form: c for form, c in self.position_words.items() if c in sides}
        self._longest = max((len(k) for k in [*self._engines, *self._brands]), default=1)

    def _brand_decision(self, word: str, brand: str) -> Decision:
        """Whether a one-word brand in a query is the brand or a word of the catalog's
        texts: by how many products' texts hold the word against the brand's products."""
        products = self.brands.get(brand, 0)
        in_text = self.word_products(word)
        if in_text > AMBIGUOUS_RATIO * products + 5:
            return Decision(
                word, "text", f"in {in_text} products' texts, the brand has {products} products"
            )
        return Decision(word, "brand", f"the brand of {products} products")

    def understand(
        self, text: str, vehicles: Iterable[str] = (), ignore: frozenset[str] = frozenset()
    ) -> Understood:
        """The constraints of ``text``; ``vehicles``: the vehicles it names (found by
        :class:`~prodsearch.search.vehicles.VehicleIndex`), kept in the text; ``ignore``:
        constraints not to look for (their words stay text)."""
        if ignore:
            return self._without(text, vehicles, ignore)
        return self._understand(text, vehicles)

    def _understand(self, text: str, vehicles: Iterable[str], prices: bool = True) -> Understood:
        toks = raw_tokens(text)
        taken = [False] * len(toks)
        engine = brand = None
        positions: list[str] = []
        decisions: list[Decision] = []
        cheap = False
        i = 0
        while i < len(toks):  # engines and brands: the longest catalog value first
            found = False
            for n in range(min(self._longest, len(toks) - i), 0, -1):
                key = tuple(t.text.replace(",", ".") for t in toks[i : i + n])
                if engine is None and key in self._engines:
                    engine = self._engines[key]
                elif brand is None and key in self._brands:
                    value = self._brands[key]
                    if n == 1:
                        decision = self._brand_decision(key[0], value)
                        decisions.append(decision)
                        if decision.taken_as == "text":
                            continue
                    brand = value
                else:
                    continue
                taken[i : i + n] = [True] * n
                i += n
                found = True
                break
            if not found:
                i += 1
        for j, tok in enumerate(toks):
            if taken[j]:
                continue
            side = self._sides.get(tok.text)
            if side is not None:
                taken[j] = True
                if side not in positions:
                    positions.append(side)
            elif tok.text in _CHEAP:
                taken[j] = cheap = True
        attribute = list(taken)  # before the price: engines, brands, sides, "cheap"
        price_min = price_max = currency = None
        if prices:
            price_min, price_max, currency = _prices(text, toks, taken)
        gone = [t for t, out in zip(toks, taken, strict=True) if out]
        removed = tuple(text[t.start : t.end] for t in gone)
        residual = _cut(text, gone)
        # what a search that ranks by the constraints (rather than filtering) reads: the
        # side words kept, since they may name the product ("rear box" is a silencer); a
        # brand or engine would pull that brand's other parts into the full-text leg
        described = _cut(text, [t for t in gone if t.text not in self._sides])
        price_words = [
            t
            for t, out, attr in zip(toks, taken, attribute, strict=True)
            if out and (not attr or t.text in _CHEAP)
        ]
        if not _WORD.search(residual):
            # nothing but constraints ("bosch do 100 zł"): they are the product words
            residual = described = _cut(text, price_words)
        if not _WORD.search(residual):
            residual = described = text
        priced_at = price_min is not None or price_max is not None
        return Understood(
            residual=residual,
            described=described,
            price_min=price_min,
            price_max=price_max,
            currency=(self.currency or currency) if priced_at else None,
            positions=tuple(positions),
            engine=engine,
            brand=brand,
            vehicles=tuple(vehicles),
            cheap=cheap,
            removed=removed,
            decisions=tuple(decisions),
        )

    def _without(self, text: str, vehicles: Iterable[str], ignore: frozenset[str]) -> Understood:
        """:meth:`understand` with some constraints not looked for: a vocabulary without
        their values, and no price read when the price is ignored."""
        rest = CatalogVocabulary(
            brands={} if "brand" in ignore else self.brands,
            engines=() if "engine" in ignore else self.engines,
            position_values=() if "position" in ignore else self.position_values,
            currency=self.currency,
            position_words=self.position_words,
            word_products=self.word_products,
        )
        return rest._understand(
            text, () if "vehicle" in ignore else vehicles, prices="price" not in ignore
        )


def _match(toks: list[_Token], i: int, cues: tuple[tuple[str, ...], ...]) -> int:
    """Length of the longest cue that ends right before token ``i`` (0: none)."""
    best = 0
    for cue in cues:
        n = len(cue)
        if n <= i and tuple(t.text for t in toks[i - n : i]) == cue:
            best = max(best, n)
    return best


def _glued_before(text: str, tok: _Token) -> bool:
    """The number continues something before it: a code ("BKR6", "378-2883", "P 40/2")."""
    return tok.start > 0 and (text[tok.start - 1].isalnum() or text[tok.start - 1] in "-/.")


def _glued_after(text: str, tok: _Token) -> bool:
    """Something continues the number: another group of a code ("647-378", "40/2")."""
    rest = text[tok.end : tok.end + 2]
    return bool(rest) and (rest[0].isdigit() or (rest[0] in "-/" and rest[1:2].isdigit()))


def _prices(
    text: str, toks: list[_Token], taken: list[bool]
) -> tuple[float | None, float | None, str | None]:
    """Price bounds: a number after a cue ("under 40", "do 100", "od 50"), a range
    ("40-80 zł", "od 50 do 100", "between 50 and 100") or a number with a currency
    ("40 zł", taken as a cap). Marks the tokens it uses in ``taken``."""
    lo = hi = None
    currency = None
    i = 0
    while i < len(toks):
        value = toks[i].number
        if value is None or taken[i] or _glued_before(text, toks[i]):
            i += 1
            continue
        nxt = toks[i + 1].text if i + 1 < len(toks) else ""
        if nxt in _UNITS:
            i += 1
            continue
        cur_at = i + 1 if nxt in _CURRENCY else None
        # a range: N - M, N do M, N to M (each side may carry the currency)
        j = i + 1 + (cur_at is not None)
        if (
            j + 1 < len(toks)
            and toks[j].text in _RANGE_JOIN
            and toks[j + 1].number is not None
            and not taken[j + 1]
            and not _glued_after(text, toks[j + 1])
        ):
            end = j + 1
            after = toks[end + 1].text if end + 1 < len(toks) else ""
            start_cue = _match(toks, i, _RANGE_START)
            has_currency = cur_at is not None or after in _CURRENCY
            if after not in _UNITS and (has_currency or start_cue or toks[j].text in "-–"):
                second = toks[end].number
                assert second is not None
                lo, hi = min(value, second), max(value, second)
                last = end + (after in _CURRENCY)
                if after in _CURRENCY:
                    currency = _CURRENCY[after]
                if cur_at is not None:
                    currency = _CURRENCY[nxt]
                for k in range(i - start_cue, last + 1):
                    taken[k] = True
                i = last + 1
                continue
        if _glued_after(text, toks[i]):
            i += 1
            continue
        max_cue = _match(toks, i, _MAX_CUES)
        min_cue = _match(toks, i, _MIN_CUES)
        cue = max(max_cue, min_cue)
        if cue and any(taken[i - cue : i]):
            cue = max_cue = min_cue = 0
        weak = cue == 1 and toks[i - 1].text in _WEAK_CUES
        if cue and weak and cur_at is None and value < _WEAK_MIN_VALUE:
            cue = 0  # "do 7": a generation, not a price
        if cue or cur_at is not None:
            if max_cue >= min_cue and max_cue:
                hi = value
            elif min_cue:
                lo = value
            else:
                hi = value  # "40 zł": a cap
            if cur_at is not None:
                currency = _CURRENCY[nxt]
            last = cur_at if cur_at is not None else i
            for k in range(i - cue, last + 1):
                taken[k] = True
            i = last + 1
            continue
        i += 1
    for j, tok in enumerate(toks):  # a currency word left alone ("zł") says nothing more
        if not taken[j] and tok.text in _CURRENCY and (lo is not None or hi is not None):
            taken[j] = True
    return lo, hi, currency


def _cut(text: str, spans: list[_Token]) -> str:
    """``text`` without the given tokens, spaces collapsed."""
    out, at = [], 0
    for tok in spans:
        out.append(text[at : tok.start])
        at = tok.end
    out.append(text[at:])
    return " ".join("".join(out).split())
