"""The commands in the README and docs/ are ones that exist: every ``medix-verl`` line parses with
the real parser (a line ending in ``...`` at least names a real subcommand), every ``python -m``
module of this project imports, every script under ``recipes/`` and ``benchmarks/`` is there,
every training recipe is one the layout knows, every evaluation task is in the registry, and every
link between the pages lands on a heading that exists."""

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OURS = ("medix_verl", "data_prep", "reward_fns")


def _commands(page: Path):
    """(line number, command) of each line of the page's code blocks, and of each command in
    backticks in its prose."""
    text = page.read_text()
    block, pending = None, ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            block = None if block is not None else number
            continue
        if block is not None:
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            yield number, pending + line
            pending = ""
        else:
            for m in re.finditer(r"`((?:medix-verl|python -m|bash recipes/|[A-Z_]+=\S+ )[^`]*)`", line):
                yield number, m.group(1)


def _tokens(command: str) -> list[str]:
    command = re.sub(r"\[[^\]]*\]", " ", command)  # optional parts: [--pairs PAIRS.jsonl]
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:
        return []
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):  # VAR=value before a command
        tokens.pop(0)
    return tokens


def _all_commands():
    for page in PAGES:
        for line, command in _commands(page):
            tokens = _tokens(command)
            if len(tokens) > 1:  # a program named in a sentence is not a command
                yield f"{page.relative_to(ROOT)}:{line}", tokens


COMMANDS = list(_all_commands())


def test_the_pages_have_commands_to_check():
    kinds = {tokens[0] for _, tokens in COMMANDS}
    assert {"medix-verl", "python", "bash"} <= kinds and len(COMMANDS) > 40


@pytest.mark.parametrize("where, tokens", [c for c in COMMANDS if c[1][0] == "medix-verl"], ids=lambda v: str(v))
def test_every_medix_verl_command_parses(where, tokens):
    from medix_verl.cli import build_parser

    args = list(tokens[1:])
    parser = build_parser()
    subcommands = set(parser._subparsers._group_actions[0].choices)
    assert args and args[0] in subcommands, f"{where}: no subcommand {args[:1]}"
    if len(args) == 1 or "..." in args or any(a.startswith("<") for a in args):
        return  # a subcommand named, or an outline of a command: the subcommand is real
    try:
        parser.parse_args(args)
    except SystemExit as exc:
        if exc.code == 0:  # --help
            return
        pytest.fail(f"{where}: medix-verl {' '.join(args)} does not parse (exit {exc.code})")


def test_every_module_script_recipe_and_task_named_exists():
    from data_prep.eval_sets import TASKS
    from medix_verl.integration.layout import RECIPES

    problems = []
    for where, tokens in COMMANDS:
        for i, token in enumerate(tokens):
            if token == "-m" and i + 1 < len(tokens) and tokens[i + 1].startswith(OURS):
                if importlib.util.find_spec(tokens[i + 1]) is None:
                    problems.append(f"{where}: no module {tokens[i + 1]}")
            path = token.split("=", 1)[-1]
            if re.fullmatch(r"(recipes|benchmarks)/[\w.]+\.(sh|py|sbatch)", path) and not (ROOT / path).exists():
                problems.append(f"{where}: no file {path}")
            training = re.fullmatch(r"recipes/(medix_r1_qwen\w+)\.sh", path)
            if training and training.group(1) not in RECIPES:
                problems.append(f"{where}: the layout has no recipe {training.group(1)}")
            if token == "--task" and i + 1 < len(tokens) and tokens[i + 1] not in TASKS:
                problems.append(f"{where}: no evaluation task {tokens[i + 1]}")
    assert not problems, problems


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_pages_lands_on_a_heading():
    anchors = {page.resolve(): {_slug(h) for h in re.findall(r"^#+ (.*)$", page.read_text(), re.M)} for page in PAGES}
    problems = []
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#\s]*\.md)?(?:#([^)\s]+))?\)", page.read_text()):
            if not target and not anchor:
                continue
            dest = (page.parent / target).resolve() if target else page.resolve()
            if dest not in anchors:
                problems.append(f"{page.name}: link to {target}, not a page")
            elif anchor and anchor not in anchors[dest]:
                problems.append(f"{page.name}: link to {target}#{anchor}, no such heading")
    assert not problems, problems
