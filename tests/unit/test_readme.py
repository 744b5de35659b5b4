"""The README's layout table names every module of the package, and nothing that is gone."""

import re

from helpers import REPO


def test_layout_table_matches_the_tree():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    listed = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", layout, flags=re.MULTILINE):
        paths = re.findall(r"`([^`]+)`", cell)
        folder = paths[0].rsplit("/", 1)[0] if "/" in paths[0] else ""
        listed.update(path if "/" in path or not folder else f"{folder}/{path}"
                      for path in paths)
    modules = {str(path.relative_to(REPO)) for path in (REPO / "tlkeras").rglob("*.py")
               if path.name not in ("__init__.py", "__main__.py")}
    assert modules - listed == set(), "modules missing from the README's layout table"
    assert {path for path in listed if path.startswith("tlkeras/") and path.endswith(".py")
            and not (REPO / path).exists()} == set(), "README lists modules that are gone"
