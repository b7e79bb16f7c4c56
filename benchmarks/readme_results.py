"""Copy a bench report into a Markdown page (between the results markers) and its plots into a docs folder.

    python3 benchmarks/readme_results.py REPORT_DIR PAGE.md DOCS_DIR

The 1k benchmark's page is docs/results.md (``... results/disc1k/bench docs/results.md docs``), the hard
benchmark's docs/hard-bench.md (``... results/hard/bench docs/hard-bench.md docs/hard``). The plots' links
are written relative to the page's folder, so they resolve wherever the page and DOCS_DIR lie.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PLOTS = ("pr_curves.png", "recall_per_family.png")


def main(report_dir: Path, page: Path, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        shutil.copy(report_dir / name, docs / name)
    body = (report_dir / "report.md").read_text().split("\n", 1)[1].strip()  # drop the report's title
    for name in PLOTS:
        link = Path(os.path.relpath(docs / name, page.parent)).as_posix()
        body = body.replace(f"]({name})", f"]({link})")
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{page}: add the markers {BEGIN} and {END} where the results go")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
