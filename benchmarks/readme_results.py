"""Copy a bench report into README.md (between the results markers) and its plots into a docs folder.

    python3 benchmarks/readme_results.py REPORT_DIR README.md DOCS_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PLOTS = ("pr_curves.png", "recall_per_family.png")


def main(report_dir: Path, readme: Path, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        shutil.copy(report_dir / name, docs / name)
    body = (report_dir / "report.md").read_text().split("\n", 1)[1].strip()  # drop the report's title
    for name in PLOTS:
        body = body.replace(f"]({name})", f"]({docs.name}/{name})")
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: add the markers {BEGIN} and {END} where the results go")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
