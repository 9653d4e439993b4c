"""The docs stand alone: every file or folder the docs, the README and e2e/ point a reader at exists in
this repository (nothing outside it, such as ../shared/...)."""

from __future__ import annotations

import glob
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = sorted(p for p in (ROOT / "e2e").rglob("*") if p.is_file())

MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# A path: starts with ./ or ../ or a top-level entry of the repository, then path characters (globs allowed).
PATH_CHARS = r"[\w.*\-/]"


def top_level_names() -> list[str]:
    return sorted((p.name for p in ROOT.iterdir() if not p.name.startswith(".")), key=len, reverse=True)


def path_pattern() -> re.Pattern[str]:
    tops = "|".join(re.escape(name) for name in top_level_names())
    return re.compile(rf"(?<![\w./:-])((?:\.\.?/)+{PATH_CHARS}*|(?:{tops})(?:/{PATH_CHARS}*)?)(?![\w-])")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    headings = re.findall(r"^#+\s+(.*)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def exists(reference: str, base: Path) -> bool:
    """`reference` names something inside the repository: relative to `base` (a link, or a path starting
    with ./ or ../), else to the repository root (a path in prose or a script); a `#anchor` must name a
    heading of the page."""
    reference, _, anchor = reference.partition("#")
    reference = reference.rstrip(".,:;")
    target = (base / reference).resolve()
    if not target.is_relative_to(ROOT):
        return False
    if any(c in reference for c in "*?["):
        return bool(glob.glob(str(target)))
    if anchor and target.suffix == ".md" and target.is_file():
        return anchor in anchors(target)
    return target.exists()


def references_in_markdown(path: Path) -> list[tuple[str, Path]]:
    """(reference, what it is relative to): links are relative to the page, paths in code spans to the root."""
    text = path.read_text()
    prose = CODE_SPAN.sub("", text)  # a code span may hold a regular expression that looks like a link
    found = [(link, path.parent) for link in MARKDOWN_LINK.findall(prose) if not re.match(r"[a-z]+:|/", link)]
    pattern = path_pattern()
    for span in CODE_SPAN.findall(text):
        found += [(m.group(1), path.parent if m.group(1).startswith(".") else ROOT) for m in pattern.finditer(span)]
    return found


def references_in_script(path: Path) -> list[str]:
    pattern = path_pattern()
    return [m.group(1) for line in path.read_text().splitlines() for m in pattern.finditer(line)]


def test_docs_and_e2e_point_only_at_files_in_the_repository() -> None:
    missing = []
    for path in DOCS:
        missing += [f"{path.relative_to(ROOT)}: {ref}" for ref, base in references_in_markdown(path)
                    if not exists(ref if ref.split("#")[0] else path.name + ref, base)]
    for path in SCRIPTS:
        # Scripts run from the repository root (e2e/run.sh cds there first).
        missing += [f"{path.relative_to(ROOT)}: {ref}" for ref in references_in_script(path) if not exists(ref, ROOT)]
    assert missing == []


def test_the_scanner_finds_references_and_rejects_outside_ones(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See [api](api.md#queryNodePool), `../shared/reference/x.md`, `kubectl apply -f crds/`, "
                    "`app.kubernetes.io/name` and [site](https://example.org/a).\n")
    assert references_in_markdown(page) == [("api.md#queryNodePool", tmp_path),
                                            ("../shared/reference/x.md", tmp_path), ("crds/", ROOT)]
    docs = ROOT / "docs"
    assert exists("api.md", docs) and exists("crds/", ROOT) and exists("examples/*/", ROOT)
    assert exists("sandbox.md#running-it", docs) and not exists("sandbox.md#no-such-heading", docs)
    assert not exists("../shared/reference/test-environment.md", docs)
    assert not exists("docs/nowhere.md", ROOT) and not exists("sandbox.md", ROOT)
