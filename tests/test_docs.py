"""The documentation site (mkdocs.yml, docs/) and the README: every page in the nav exists,
and every relative link points to an existing file; links in docs/ stay inside docs/ (a
link out of it fails `mkdocs build --strict`)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", flags=re.S)


def _nav_pages(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_pages(value)


def _config():
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_every_nav_page_exists():
    config = _config()
    assert config["docs_dir"] == "docs"
    pages = [p for p in _nav_pages(config["nav"]) if "://" not in p]
    assert "index.md" in pages and "api.md" in pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {missing}"


def test_every_method_card_is_in_the_nav():
    pages = set(_nav_pages(_config()["nav"]))
    cards = {f"methods/{p.name}" for p in (DOCS / "methods").glob("*.md")}
    assert cards <= pages, f"method cards missing from the nav: {sorted(cards - pages)}"


def _links(page):
    text = CODE.sub("", page.read_text())
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # an address (https:, mailto:) or an anchor on the same page
        yield target.split("#")[0]


PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken, outside = [], []
    for target in _links(page):
        path = (page.parent / target).resolve()
        if not path.exists():
            broken.append(target)
        elif page.is_relative_to(DOCS) and not path.is_relative_to(DOCS):
            outside.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: {broken}"
    assert not outside, f"{page.relative_to(ROOT)}: links out of docs/: {outside}"


def _methods_table(text):
    section = text[text.index("## Methods\n"):]
    return [line for line in section.split("\n## ")[0].splitlines() if line.startswith("|")]


def test_the_home_page_lists_the_readmes_methods():
    readme = (ROOT / "README.md").read_text().replace("](docs/", "](")
    assert _methods_table((DOCS / "index.md").read_text()) == _methods_table(readme)
