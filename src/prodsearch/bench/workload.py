"""Benchmark queries: 480 real e-commerce queries (Wayfair WANDS, MIT) + catalog-domain ones."""

from __future__ import annotations

import csv
from importlib import resources

# Queries in the demo catalog's domain, English and Polish, some with part numbers.
CATALOG_QUERIES: tuple[str, ...] = (
    "brake pads",
    "front brake pads for golf",
    "ceramic brake pads low dust",
    "brake discs vented",
    "rear brake disc",
    "shock absorber front",
    "oil filter",
    "air filter for octavia",
    "cabin filter activated carbon",
    "spark plug iridium",
    "timing belt kit",
    "water pump",
    "alternator 14v",
    "starter motor",
    "car battery agm",
    "h7 bulb",
    "wiper blade 600 mm",
    "radiator aluminium",
    "thermostat with housing",
    "lambda sensor",
    "clutch kit with bearing",
    "wheel bearing front",
    "engine oil 5w-30",
    "brake fluid dot 4",
    "coolant g12",
    "control arm with ball joint",
    "stabilizer link rear",
    "tie rod end left",
    "klocki hamulcowe",
    "klocki hamulcowe przednie",
    "tarcza hamulcowa tylna",
    "amortyzator przedni",
    "filtr oleju",
    "filtr powietrza",
    "filtr kabinowy z węglem aktywnym",
    "świeca zapłonowa",
    "zestaw paska rozrządu",
    "pompa wody",
    "akumulator 12v",
    "żarówka h7",
    "pióro wycieraczki",
    "chłodnica",
    "sonda lambda",
    "zestaw sprzęgła",
    "olej silnikowy 5w-30",
    "płyn hamulcowy",
    "wahacz przedni",
    "łącznik stabilizatora",
    "bosch brake pads golf vii",
    "brembo discs passat",
    "mann filter HU 719/7 x",
    "GDB1550",
)


def wands_queries() -> list[str]:
    """The 480 WANDS queries, in file order."""
    data = resources.files("prodsearch.bench") / "data" / "wands_queries.tsv"
    with data.open(encoding="utf-8") as fh:
        return [row["query"] for row in csv.DictReader(fh, delimiter="\t") if row["query"].strip()]


def benchmark_queries() -> list[str]:
    return wands_queries() + list(CATALOG_QUERIES)


def recall_sample(n: int) -> list[tuple[str, str]]:
    """``n`` queries for recall: every catalog-domain one, the rest evenly spaced WANDS
    queries; each tagged ``"catalog"`` or ``"wands"`` so recall is reported per set."""
    wands = wands_queries()
    take = max(1, n - len(CATALOG_QUERIES))
    sample = [("wands", q) for q in wands[:: max(1, len(wands) // take)][:take]]
    return sample + [("catalog", q) for q in CATALOG_QUERIES]
