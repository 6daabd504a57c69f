"""Which vehicle a query names ("golf 7", "do golfa", "passat b8", "bmw f30").

The vehicles are the distinct values of the catalog's vehicle column
(``PRODSEARCH_VEHICLE_COLUMN``, default ``vehicle``), e.g. ``VW Golf VII``: make, model,
generation. A query names a vehicle when it holds the model word (inflected or not:
"golfa" → "golf") — with the make too when the model alone is ambiguous (a number: "3",
"308"; one letter: "C") — or a distinctive generation code ("b8", "f30", "w205"). When it
also names the generation ("golf 7", "golf vii"), only that generation counts; otherwise
every generation of the model does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prodsearch.catalog.lexical import forms, tokens

MAKE_ALIASES = {"volkswagen": "vw", "merc": "mercedes", "benz": "mercedes", "skody": "skoda"}


@dataclass(frozen=True)
class Vehicle:
    name: str
    make: str
    model: str
    generation: tuple[str, ...]

    @classmethod
    def parse(cls, name: str) -> Vehicle | None:
        words = tokens(name)
        if len(words) < 2:
            return None
        return cls(name, words[0], words[1], tuple(words[2:]))

    @property
    def model_needs_make(self) -> bool:
        return self.model.isdigit() or len(self.model) < 3

    @property
    def codes(self) -> tuple[str, ...]:
        """Generation words that name this vehicle on their own ("b8", "w205", "8v")."""
        return tuple(g for g in self.generation if len(g) >= 2 and not g.isdigit())


def _lexemes(words: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for w in words:
        out.update(forms(MAKE_ALIASES.get(w, w)))
    return out


class VehicleIndex:
    def __init__(self, names: Iterable[str]) -> None:
        self.vehicles = [v for v in (Vehicle.parse(n) for n in names if n) if v is not None]

    def __len__(self) -> int:
        return len(self.vehicles)

    def find(self, text: str) -> list[str]:
        """Names of the vehicles ``text`` names (empty when it names none)."""
        if not self.vehicles:
            return []
        words = tokens(text)
        lex = _lexemes(words)
        plain = set(words)
        found: list[Vehicle] = []
        for v in self.vehicles:
            by_model = v.model in lex and (not v.model_needs_make or v.make in lex)
            if by_model or any(c in plain for c in v.codes):
                found.append(v)
        exact = [v for v in found if v.generation and all(g in plain for g in v.generation)]
        return [v.name for v in (exact or found)]
