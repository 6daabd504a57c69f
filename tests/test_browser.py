"""The web page, driven in real headless Chromium (Debian chromium + chromedriver).

`make test` installs both. The test starts `prodsearch serve` on a free local port
against a real embedded catalog, and always stops it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import served_api

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def server(search_db: str, pg_root: Path) -> Iterator[str]:
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    with served_api(env) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail(
            "Debian chromium and chromium-driver are needed: `make test` installs them "
            "(apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="prodsearch-chromium-")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1400",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def items(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, "li.result"))


def test_search_filter_and_similar_in_a_real_browser(server: str, browser: object) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser
    # the page re-renders its result list: an element found a moment ago may be gone
    wait = WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])

    def texts(selector: str) -> list[str]:
        """The texts of the elements matching ``selector``, read in one consistent pass."""
        return list(
            wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, selector)])
        )

    driver.get(server + "/")  # type: ignore[attr-defined]
    box = wait.until(ec.element_to_be_clickable((By.ID, "q")))
    # hybrid (meaning, words and part numbers) is what the page searches with by default
    assert driver.find_element(By.CSS_SELECTOR, "input[value=hybrid]").is_selected()  # type: ignore[attr-defined]
    box.send_keys("front brake pads", Keys.ENTER)  # keyboard only
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "li.result"))
    status = driver.find_element(By.ID, "status").text  # type: ignore[attr-defined]
    assert "results for" in status and " ms" in status and "(hybrid)" in status
    # facet counts say what they count: here the top results, not the catalog
    caption = texts("#facets .facets-over")
    assert caption and caption[0].startswith("Counts among the top")
    assert texts("li.result .category")[0] == "Brake Pads"
    assert driver.find_elements(By.CSS_SELECTOR, "li.result .score")  # type: ignore[attr-defined]

    # a filter is honoured: every result is in the chosen category (semantic search: a
    # filter that matches few products is searched exactly, and its facets count them all)
    driver.find_element(By.CSS_SELECTOR, "input[value=semantic]").click()  # type: ignore[attr-defined]
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#category option")) > 10)
    Select(driver.find_element(By.ID, "category")).select_by_visible_text("Spark Plugs")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "in_stock").click()  # type: ignore[attr-defined]
    driver.find_element(By.ID, "go").click()  # type: ignore[attr-defined]
    wait.until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, "li.result")
            and all(
                e.text == "Spark Plugs"
                for e in d.find_elements(By.CSS_SELECTOR, "li.result .category")
            )
        )
    )
    stock = texts("li.result .stock")
    assert stock and all(s == "in stock" for s in stock)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".facets-over"), "over all"))
    matching = int(texts("#facets .facets-over")[0].split()[3])
    spark = [b for b in texts(".facet-category button.facet-value") if b.startswith("Spark Plugs")]
    assert matching >= len(stock) and spark and int(spark[0].split()[-1]) == matching
    shot = os.environ.get("PRODSEARCH_SCREENSHOT")
    if shot:
        driver.save_screenshot(shot)  # type: ignore[attr-defined]

    # follow "similar products" of the first result
    item = driver.find_element(By.CSS_SELECTOR, "li.result")  # type: ignore[attr-defined]
    pid = item.get_attribute("data-product-id")
    item.find_element(By.CSS_SELECTOR, "a.similar").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "similar to"))
    ids = [
        e.get_attribute("data-product-id")
        for e in driver.find_elements(By.CSS_SELECTOR, "li.result")
    ]  # type: ignore[attr-defined]
    assert len(ids) == 20 and pid not in ids

    # hybrid mode with a Polish query
    driver.find_element(By.CSS_SELECTOR, "input[value=hybrid]").click()  # type: ignore[attr-defined]
    Select(driver.find_element(By.ID, "category")).select_by_index(0)  # type: ignore[attr-defined]
    driver.find_element(By.ID, "in_stock").click()  # type: ignore[attr-defined]
    box = driver.find_element(By.ID, "q")  # type: ignore[attr-defined]
    box.clear()
    box.send_keys("klocki hamulcowe", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "(hybrid)"))
    # a Polish query: titles in Polish with the English name below, where the product has a
    # Polish name (the others keep their English one)
    shown = wait.until(
        lambda d: [
            (
                li.find_element(By.CSS_SELECTOR, ".name").text,
                [e.text for e in li.find_elements(By.CSS_SELECTOR, ".alt")],
            )
            for li in d.find_elements(By.CSS_SELECTOR, "li.result")
        ]
    )[:10]
    polish = [(t, alt) for t, alt in shown if alt]
    assert len(polish) >= 5, shown
    assert all(t.startswith("Klocki hamulcowe") and "Brake Pads" in alt[0] for t, alt in polish)
    assert all("Brake Pads" in t for t, alt in shown if not alt), shown

    # facets: counts shown, a click filters by that value; "more results" appends a page
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".facet-brand button.facet-value"))
    facet = driver.find_elements(By.CSS_SELECTOR, ".facet-brand button.facet-value")[0]  # type: ignore[attr-defined]
    brand = facet.get_attribute("data-value")
    assert int(facet.find_element(By.CSS_SELECTOR, ".count").text) >= 1
    facet.click()
    # the new search has rendered when its facet list shows the value as chosen
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".facet-brand [aria-pressed=true]"))
    wait.until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, "li.result .brand")
            and all(e.text == brand for e in d.find_elements(By.CSS_SELECTOR, "li.result .brand"))
        )
    )
    assert Select(driver.find_element(By.ID, "brand")).first_selected_option.text == brand  # type: ignore[attr-defined]
    Select(driver.find_element(By.ID, "brand")).select_by_index(0)  # type: ignore[attr-defined]
    box = driver.find_element(By.ID, "q")  # type: ignore[attr-defined]
    box.clear()
    box.send_keys("oil filter", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "“oil filter”"))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.result")) == 20)
    first_page = [e.get_attribute("data-product-id") for e in items(driver)]
    driver.find_element(By.ID, "more").click()  # type: ignore[attr-defined]
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.result")) == 40)
    both = [e.get_attribute("data-product-id") for e in items(driver)]
    assert both[:20] == first_page and len(set(both)) == 40


HOSTILE = 999_001
HOSTILE_NAME = "<script>window.pwned=1</script> Zyxwheel & <b>brake</b> pads"


@pytest.fixture()
def hostile_product(search_db: str, pg_root: Path, encoders: dict[str, Any]) -> Iterator[None]:
    """A product whose name is markup, embedded in the shared catalog, removed after."""
    import psycopg

    from prodsearch.config import Settings
    from prodsearch.db.names import DEMO_CATALOG
    from prodsearch.embedding.sync import SyncOptions, sync

    settings = Settings(home=pg_root, database_url=search_db, mode="int8")
    with psycopg.connect(search_db) as conn:
        conn.execute(
            f"INSERT INTO {DEMO_CATALOG} (product_id, name, category, price, in_stock)"
            " VALUES (%s, %s, 'Brake Pads', 99, true)",
            (HOSTILE, HOSTILE_NAME),
        )
        conn.commit()
        sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])
        try:
            yield
        finally:
            conn.execute(f"DELETE FROM {DEMO_CATALOG} WHERE product_id = %s", (HOSTILE,))
            conn.commit()
            sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])


def test_suggestions_chips_and_marked_words_by_keyboard(
    server: str, browser: object, hostile_product: None
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver: Any = browser
    wait = WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])
    driver.get(server + "/")
    box = wait.until(ec.element_to_be_clickable((By.ID, "q")))
    for radio in driver.find_elements(By.CSS_SELECTOR, "input[value=hybrid]"):
        radio.click()

    # suggestions: typed without diacritics, chosen with the arrow keys and Enter
    box.send_keys("sprezy")
    wait.until(lambda d: d.find_element(By.ID, "q").get_attribute("aria-expanded") == "true")
    options = driver.find_elements(By.CSS_SELECTOR, "#suggestions [role=option]")
    assert options and options[0].text.startswith("sprężyna zawieszenia")
    box.send_keys(Keys.ARROW_DOWN)
    active = box.get_attribute("aria-activedescendant")
    assert active == options[0].get_attribute("id")
    assert options[0].get_attribute("aria-selected") == "true"
    box.send_keys(Keys.ARROW_DOWN, Keys.ARROW_UP, Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "“sprężyna zawieszenia"))
    assert box.get_attribute("aria-expanded") == "false"
    # Esc closes the list without searching
    box.clear()
    box.send_keys("klocki ham")
    wait.until(lambda d: d.find_element(By.ID, "q").get_attribute("aria-expanded") == "true")
    box.send_keys(Keys.ESCAPE)
    wait.until(lambda d: d.find_element(By.ID, "suggestions").get_attribute("hidden"))

    # understood constraints are chips; one removed by keyboard searches again without it
    box.clear()
    box.send_keys("tylne klocki hamulcowe do 200 zł", Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chips .chip")) == 2)
    chips = {
        c.get_attribute("data-constraint"): c
        for c in driver.find_elements(By.CSS_SELECTOR, "#chips .chip")
    }
    assert set(chips) == {"price", "position"} and "200" in chips["price"].text
    prices = [
        float(e.text.split()[0]) for e in driver.find_elements(By.CSS_SELECTOR, "li.result .price")
    ]
    assert prices and max(prices) <= 200
    chips["price"].send_keys(Keys.ENTER)  # a button: Enter presses it
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chips .chip")) == 1)
    left = driver.find_element(By.CSS_SELECTOR, "#chips .chip").get_attribute("data-constraint")
    assert left == "position"

    # matched words are marked; a name that holds markup is shown as text, never run
    box.clear()
    box.send_keys("zyxwheel brake pads", Keys.ENTER)
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"li.result[data-product-id='{HOSTILE}']")
    )
    item = driver.find_element(By.CSS_SELECTOR, f"li.result[data-product-id='{HOSTILE}']")
    assert item.find_element(By.CSS_SELECTOR, ".name").text == HOSTILE_NAME
    marks = [m.text for m in item.find_elements(By.CSS_SELECTOR, ".name mark")]
    assert "Zyxwheel" in marks and "pads" in marks
    assert not item.find_elements(By.CSS_SELECTOR, ".name b, .name script")
    assert driver.execute_script("return window.pwned") is None
