"""The guide in docs/ stays honest: every `path:function` and every test it names
exists, every page has its parts, and the pages follow the course's order.
(tests/e2e/test_docs_regen.py checks the excerpts against a fresh run.)"""
import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
COURSE = ["decode", "info", "peers", "handshake", "download_piece", "download", "magnet_parse",
          "magnet_handshake", "magnet_info", "magnet_download_piece", "magnet_download", "seed", "create", "dht",
          "v2"]
CODE_REF = re.compile(r"`(app/[\w/]+\.py):([\w.]+)`")
TEST_REF = re.compile(r"`(tests/[\w/]+(?:\.py)?)(?:::(\w+))?`")
SECTIONS = ["## The protocol", "## The code, in call order", "<!-- regen: ", "## Tests", "## Exercise"]
# Pages whose stage is not traced yet: they say so where the excerpt would be.
UNTRACED: dict[str, str] = {}   # stage -> the sentence a page says instead of an excerpt (none left)


@cache
def definitions(path: str) -> dict[str, set[str]]:
    """Top-level functions and classes of a module, each class with its methods."""
    tree = ast.parse((ROOT / path).read_text())
    found: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            found[node.name] = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return found


def broken_references(text: str) -> list[str]:
    problems = []
    for path, name in CODE_REF.findall(text):
        if not (ROOT / path).is_file():
            problems.append(f"{path} does not exist")
            continue
        top, _, method = name.partition(".")
        defs = definitions(path)
        if top not in defs or (method and method not in defs[top]):
            problems.append(f"{path}:{name} is not defined")
    for path, name in TEST_REF.findall(text):
        if not (ROOT / path).exists():
            problems.append(f"{path} does not exist")
        elif name and name not in definitions(path):
            problems.append(f"{path}::{name} is not a test")
    return problems


def pages() -> list[Path]:
    return sorted(DOCS.glob("[0-9][0-9]-*.md"))


def test_one_page_per_stage_in_course_order():
    assert [re.sub(r"^\d\d-", "", p.stem) for p in pages()] == COURSE
    index = (DOCS / "README.md").read_text()
    assert re.findall(r"\]\((\d\d-[\w]+)\.md\)", index) == [p.stem for p in pages()]


def test_every_page_has_its_parts():
    for page in pages():
        text = page.read_text()
        stage = re.sub(r"^\d\d-", "", page.stem)
        if stage in UNTRACED:
            assert UNTRACED[stage] in text
            text = text.replace("## The trace", "<!-- regen: ")
        positions = [text.find(s) for s in SECTIONS]
        assert all(p >= 0 for p in positions), f"{page.name} lacks {[s for s, p in zip(SECTIONS, positions) if p < 0]}"
        assert positions == sorted(positions), f"{page.name}: sections out of order"
        assert len(CODE_REF.findall(text)) >= 2, f"{page.name} names too few functions"
        assert TEST_REF.search(text), f"{page.name} names no test"
        assert "./tests/run.sh " in text, f"{page.name} does not say how to run its tests"


def test_every_named_function_and_test_exists():
    problems = [f"{page.name}: {p}" for page in [*pages(), DOCS / "README.md"]
                for p in broken_references(page.read_text())]
    assert problems == []


def test_the_check_catches_a_stale_name():
    """The check itself can fail: a renamed function, a missing module, a missing test."""
    text = ("`app/core/session.py:PeerSession.no_such_method` `app/core/nothing.py:x` "
            "`app/core/session.py:PeerSession._on_handshake` `tests/unit/test_docs.py::test_nothing`")
    assert broken_references(text) == [
        "app/core/session.py:PeerSession.no_such_method is not defined",
        "app/core/nothing.py does not exist",
        "tests/unit/test_docs.py::test_nothing is not a test",
    ]
