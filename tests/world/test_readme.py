"""The README's quick tour, run: every world example's command is run in order on a copy of the demo's workspace,
and every line of output the README shows must be printed, with its numbers.

What the world's seed fixes (the world, its votes, what is computed from pixels and votes alone) is compared
exactly. Numbers of a command that uses the zoo (a ``world:`` model, ``zoo``, ``demo``) are compared within
``ZOO_TOLERANCE``: training is bit-reproducible on one machine (``test_zoo``'s
``test_training_is_deterministic_given_the_seed``) but not across CPUs, and the README was written on one machine.
Timings are never compared. README.md says the same under "A quick tour".

The README's "…" stands for any text (an elided path or caption); a line that is only "…" stands for elided lines.
"""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shiftlab.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"

#: a zoo-dependent number may differ from the README's by this much: (absolute, relative), whichever is larger;
#: accuracies are in percent (3 points) and counts of errors or queue rows move with them (10 %)
ZOO_TOLERANCE = (3.0, 0.10)

#: README commands that are not world examples (or cannot run unattended), and why they are not run here
NOT_RUN = [
    (r"\$[RTP]\b|\.\./shared", "uses the published reference data in ../shared"),
    (r"\bpets\b|torchscript:", "a folder and a model of the reader's own"),
    (r"datasets add imagenetv2|^datasets$", "registers (and lists) the reference data"),
    (r"^models( |$)", "lists what is installed here, or a model file of the reader's own"),
    (r"…", "elided in the README"),
    (r"robust (eval|datasets|study|mnist)", "minutes of compute (tests/analyze/robustfeatures and the demo's "
                                                  "robust section run the same at a smaller size)"),
    (r"easyset (review-task|build)", "needs a reviewer's decisions (tests/curate/easyset/test_cli.py runs rank → "
                                     "review-task → decisions → build end to end)"),
    (r"--executor ray", "needs a running Ray cluster (tests/predict/test_ray_executor.py runs the same on a "
                        "local one)"),
]

# a number on its own: not inside an identifier such as cnn-medium-s0, te-0138 or a hex hash
_NUM = re.compile(r"(?<![\w.\-])[-+−]?\d(?:[\d,]*\d)?(?:\.\d+)?(?:e[-+]\d+)?(?![\w])")
_BOX = set("┏┓┗┛┡┩└┘┌┐├┤┬┴┼━─═╇╈╋┳┻ ")
#: output columns that are measurements of this run, not results: masked on both sides
_MASKED_COLUMNS = {"train s", "cached"}
_TIMING = re.compile(r"\(\d+ s\)")


@dataclass
class Example:
    """One ``$ shiftlab …`` line of a README code block and the output lines shown under it."""

    command: str
    expected: list[str] = field(default_factory=list)
    skip: str | None = None  # why it is not run

    @property
    def uses_zoo(self) -> bool:
        return "world:" in self.command or self.command.split()[0] in ("zoo", "demo")


def quick_tour(readme: str) -> str:
    """The README's "A quick tour" section, up to the next heading of its level."""
    m = re.search(r"^## A quick tour\n(.*?)(?=^## )", readme, re.S | re.M)
    assert m, "README.md has no '## A quick tour' section"
    return m.group(1)


def readme_examples(text: str) -> list[Example]:
    """The ``$`` commands of the code blocks of ``text`` (continuation lines joined, shell comments dropped) and
    the output printed under each; other programs' commands (``cat``, ``R=…``) are kept as skipped examples so that
    their output is not taken for the previous command's."""
    out: list[Example] = []
    for block in re.findall(r"^```\n(.*?)^```", text, re.S | re.M):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                cmd = line[2:]
                while cmd.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
                cmd = re.sub(r"\s+#\s.*$", "", cmd).strip()
                if cmd.startswith("shiftlab "):
                    ex = Example(cmd[len("shiftlab "):])
                    ex.skip = next((why for rx, why in NOT_RUN if re.search(rx, ex.command)), None)
                else:
                    ex = Example(cmd, skip="not a shiftlab command")
                out.append(ex)
            elif out:
                out[-1].expected.append(line)
            i += 1
    return out


def _normalise(lines: list[str]) -> list[str]:
    """Lines as compared: table borders and padding gone, columns that measure this run masked, whitespace
    collapsed; border-only and empty lines dropped."""
    out, header = [], None
    for line in lines:
        if not line.strip() or set(line) <= _BOX:
            continue
        if "┃" in line:
            header = [c.strip() for c in line.strip().strip("┃").split("┃")]
        elif "│" in line and header is not None:
            cells = [c.strip() for c in line.strip().strip("│").split("│")]
            if len(cells) == len(header):
                cells = ["*" if h in _MASKED_COLUMNS else c for h, c in zip(header, cells)]
            line = "│ " + " │ ".join(cells) + " │"
        line = _TIMING.sub("(* s)", line.replace("┃", "│").rstrip("─ ").strip())
        out.append(re.sub(r"\s+", " ", line))
    return out


def _number(s: str) -> float:
    return float(s.replace(",", "").replace("−", "-"))


def _pattern(expected: str) -> tuple[re.Pattern, list[float]]:
    """A regex that matches a printed line of the same text with any numbers in the places of the expected one's
    (``…`` matches anything), and the expected numbers."""
    parts, nums, pos = [], [], 0
    for m in _NUM.finditer(expected):
        parts.append(re.escape(expected[pos:m.start()]).replace("…", ".*?"))
        parts.append(f"({_NUM.pattern})")
        nums.append(_number(m.group()))
        pos = m.end()
    parts.append(re.escape(expected[pos:]).replace("…", ".*?"))
    return re.compile("".join(parts)), nums


def _close(got: list[float], want: list[float], zoo: bool) -> bool:
    if not zoo:
        return got == want
    a, r = ZOO_TOLERANCE
    return all(abs(g - w) <= max(a, r * abs(w)) for g, w in zip(got, want))


#: a table's title wraps to the table's width whatever the terminal's (a long path folds mid-word): a README
#: line may be up to this many printed lines joined, at each break by a space (a word wrap) or nothing (a fold)
MAX_WRAPPED = 4


def _printed_lines(printed: list[str], workdir: Path | None) -> list[str]:
    """The normalised printed lines, and each run of up to ``MAX_WRAPPED`` of them joined every way (a wrapped
    table title is then one of them); paths in the working folder relative to it, as the README writes them."""
    lines = _normalise(printed)
    out = []
    for i in range(len(lines)):
        for k in range(1, MAX_WRAPPED + 1):
            run = lines[i:i + k]
            if len(run) < k:
                break
            for seps in itertools.product((" ", ""), repeat=k - 1):
                out.append(run[0] + "".join(s + t for s, t in zip(seps, run[1:])))
    return [line.replace(f"{workdir}/", "") for line in out] if workdir is not None else out


def compare(ex: Example, printed: list[str], workdir: Path | None = None) -> list[str]:
    """The README lines of ``ex`` that the ``printed`` output lacks, each with the nearest printed line."""
    printed = _printed_lines(printed, workdir)
    missing = []
    for want in _normalise(ex.expected):
        if want == "…" or want.startswith("… "):  # elided lines
            continue
        rx, nums = _pattern(want)
        hits = [m for line in printed if (m := rx.fullmatch(line))]
        if not any(_close([_number(g) for g in m.groups()], nums, ex.uses_zoo) for m in hits):
            near = hits[0].group(0) if hits else "(no line of this shape)"
            missing.append(f"  README: {want}\n  printed: {near}")
    return missing


def test_readme_examples_are_parsed():
    """The parser finds the tour's commands, their outputs, and skips only what it has a reason to."""
    examples = readme_examples(quick_tour(README.read_text()))
    run = [e for e in examples if e.skip is None]
    assert len(run) >= 15, [e.command for e in run]
    build = next(e for e in run if e.command == "world build")
    assert any("world-pool" in line and "513" in line for line in build.expected)
    assert any(e.command.startswith("robustness ") for e in run)  # the world example of robustness is run
    skipped = {e.command.split()[0] for e in examples if e.skip == "not a shiftlab command"}
    assert {"R=../shared/reference/imagenetv2", "cat", "ls"} <= skipped


def test_numbers_and_elisions_are_compared():
    ex = Example("eval -d world-test -m world:mlp", ["│ cnn-wide │ 350 │ 95.43 [92.68, 97.36] │", "wrote …/x.csv"])
    assert ex.uses_zoo
    assert compare(ex, ["│ cnn-wide │ 350 │ 96.00 [93.10, 98.00] │", "wrote shiftlab-workspace/a/x.csv"]) == []
    assert len(compare(ex, ["│ cnn-wide │ 350 │ 90.00 [93.10, 98.00] │", "wrote x.csv"])) == 1  # 5.4 points off
    exact = Example("world build", ["│ world-pool │ 513 │", "planted: 66 near-duplicates, 10 label errors"])
    assert compare(exact, ["│ world-pool │ 513 │", "planted: 66 near-duplicates, 10 label errors"]) == []
    assert len(compare(exact, ["│ world-pool │ 514 │", "planted: 66 near-duplicates, 11 label errors"])) == 2
    # numbers inside names are text: te-0138 is not te-0139 within a tolerance
    zoo = Example("label-issues -m world:mlp", ["│ 1 │ te-0138 │ six │"])
    assert len(compare(zoo, ["│ 1 │ te-0139 │ six │"])) == 1
    # what measures the run is not compared
    assert _normalise(["┃ spec ┃ train s ┃", "│ world:mlp │ 0.6 │", "report: x (12 s)"]) == \
        ["│ spec │ train s │", "│ world:mlp │ * │", "report: x (* s)"]


@pytest.mark.slow
def test_readme_world_examples_print_what_the_readme_shows(demo, tmp_path, monkeypatch, capsys):
    ws, _ = demo
    # the tour after `make demo`: ./shiftlab-workspace, which the README's relative paths name
    shutil.copytree(ws, tmp_path / "shiftlab-workspace", symlinks=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHIFTLAB_HOME", raising=False)
    from shiftlab.cli.common import out

    monkeypatch.setattr(out, "width", 10_000)  # the README's lines unwrapped (a terminal as wide as they need)
    failures, ran = [], []
    for ex in readme_examples(quick_tour(README.read_text())):
        if ex.skip:
            continue
        capsys.readouterr()
        code = main(["--quiet", *shlex.split(ex.command)])
        cap = capsys.readouterr()
        ran.append(ex.command)
        if code != 0:
            failures.append(f"$ shiftlab {ex.command}\n  exit {code}: {cap.err.strip()}")
            continue
        missing = compare(ex, cap.out.splitlines(), tmp_path)
        if missing:
            failures.append(f"$ shiftlab {ex.command}\n" + "\n".join(missing))
    assert len(ran) >= 15
    assert not failures, "README lines that the commands do not print:\n" + "\n".join(failures)
