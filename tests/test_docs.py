"""What the README says of the tool matches what the tool says of itself."""

import re
from pathlib import Path

from lottery.cli import main
from lottery.imp.branches import BRANCHES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_readmes_branch_table_is_the_catalogue(capsys):
    rows = re.findall(r"^\| `(\w+)` \| .* \| (.+?) \|$", README, flags=re.M)
    assert [name for name, _ in rows] == list(BRANCHES), "every branch, in the catalogue's order"
    assert {name: cost for name, cost in rows} == {b.name: b.cost for b in BRANCHES.values()}
    assert main(["branches"]) == 0
    listed = capsys.readouterr().out
    assert all(f"cost to find the mask: {b.cost}" in listed for b in BRANCHES.values())


def test_the_readme_says_what_the_tool_is_for_and_how_intervals_are_made():
    assert "classification" in README.split("## Set up and run")[0], "said up front: the tool is for classifiers"
    assert "mean ± std" not in README and "95% CI" in README


def test_the_fault_catalogue_documents_every_tested_case():
    import test_faults

    text = (Path(__file__).resolve().parents[1] / "docs" / "faults.md").read_text()
    ids = [c[0] for c in test_faults.CLI_CASES + test_faults.API_CASES]
    ids += ["disk-full", "sigint", "sigterm", "ctrl-c-while-torch-loads"]
    missing = [i for i in ids if f"| {i} |" not in text]
    assert not missing, f"docs/faults.md lacks {missing}"
    assert len(ids) >= 25
