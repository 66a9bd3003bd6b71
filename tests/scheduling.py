"""How the suite is spread over processes (pytest-xdist; pyproject.toml asks for one per core).

Two rules, applied by the hooks in tests/conftest.py:
- a test that uses a fixture of module, class or package scope defined in its file (a trained
  study, a run, a torchrun job) runs on the process that runs the file's other such tests, so
  the fixture is built once; every other test is scheduled on its own, wherever a process is free;
- the files that take longest run first, so that no process is left with one of them at the end
  while the others idle.

pytest-xdist's own `--dist loadgroup` reads `xdist_group` marks through a node id suffix that
pytest 9 no longer honours, and its controller process never collects the tests, so the grouping
is read from the test files' source here.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Files in the order of the time their tests take together, longest first (measured on 2 cores;
# the order matters, not the figures). Every other file follows, in collection order.
LONGEST_FIRST = (
    "tests/train/test_distributed.py",
    "tests/cli/test_ablate_submit.py",
    "tests/train/test_resume.py",
    "tests/train/test_engine.py",
    "tests/cli/test_output.py",
    "tests/run/test_run_lock.py",
    "tests/trackers/test_trackers.py",
    "tests/train/test_regression.py",
    "tests/test_gpu_check.py",
    "tests/cli/test_ablate.py",
    "tests/cli/test_offline_start.py",
    "tests/test_promises_runs.py",
    "tests/train/test_precision.py",
    "tests/test_reliability.py",
)
SHARED_SCOPES = {"module", "class", "package", "session"}


def file_rank(nodeid: str) -> int:
    """Sort key of a test: its file's place in LONGEST_FIRST, or after all of them."""
    path = nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def _fixture(node: ast.FunctionDef) -> tuple[str, str] | None:
    """(name, scope) when `node` is decorated as a pytest fixture."""
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call else decorator
        if not (isinstance(target, ast.Attribute) and target.attr == "fixture"
                or isinstance(target, ast.Name) and target.id == "fixture"):
            continue
        keywords = {k.arg: k.value for k in call.keywords} if call else {}
        scope = keywords.get("scope")
        name = keywords.get("name")
        return (name.value if isinstance(name, ast.Constant) else node.name,
                scope.value if isinstance(scope, ast.Constant) else "function")
    return None


@functools.cache
def units_sharing_fixtures(path: str) -> frozenset[str]:
    """Test functions and test classes of a file that need one of the file's shared fixtures.

    A test needs a fixture it names as a parameter, or one that a fixture it needs names; a test
    class is one unit as soon as one of its methods needs one.
    """
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    uses: dict[str, set[str]] = {}  # fixture -> the fixtures it names
    shared: set[str] = set()
    units: dict[str, set[str]] = {}  # test function or class -> the fixtures it names

    def params(fn: ast.FunctionDef) -> set[str]:
        return {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)}

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            fixture = _fixture(node)
            if fixture is not None:
                uses[fixture[0]] = params(node)
                if fixture[1] in SHARED_SCOPES:
                    shared.add(fixture[0])
            elif node.name.startswith("test"):
                units[node.name] = params(node)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            methods = [m for m in node.body if isinstance(m, ast.FunctionDef)]
            units[node.name] = set().union(*(params(m) for m in methods)) if methods else set()
    needs_shared = set(shared)
    while True:  # fixtures that need a shared one, through any chain of fixtures of this file
        more = {name for name, named in uses.items() if named & needs_shared} - needs_shared
        if not more:
            break
        needs_shared |= more
    return frozenset(unit for unit, named in units.items() if named & needs_shared)


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its file when it needs a shared fixture, else itself."""
    path, _, rest = nodeid.partition("::")
    unit = rest.split("::", 1)[0].split("[", 1)[0]
    return path if unit in units_sharing_fixtures(path) else nodeid


def make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return SharedFixtureScheduling(config, log)
