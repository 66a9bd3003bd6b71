"""Run the `acct ...` commands shown in README.md and docs/*.md, offline, on the tiny preset.

Every `acct` (or `python -m acct`) command in a fenced code block is collected in order (a
leading `$ ` and a trailing `# comment` are dropped, `\\` continuations joined) and run in one
scratch directory, so a run trained by an earlier command is there for the later ones; `> FILE`
after a command writes its stdout to FILE, as the shell would. Training budgets are cut to a few
steps (`--max-steps`, ACCT_OPTIM__MAX_STEPS) and a study to two seeds per arm, so the check
takes minutes on a CPU.

What a command must do to pass:
- shown with an `error: ...` line as its output: fail (non-zero exit) with exactly that line on
  stderr; it runs as written, budget untouched, since it fails before anything trains;
- a hub command (train or ablate with neither --preset nor --resume): fail offline with one line
  naming Hugging Face;
- any other: exit 0.

Not run, and listed with the reason: synopsis lines (placeholders such as RUN_DIR or
`[--flag]`), torchrun launches, an `acct train` or `acct export` shown again (its folder is
already there), and the commands on the MMLU copy in ../shared beside the repository (and on the run
they train) unless --with-shared is given and ../shared exists.

The scratch directory and every cache the commands write (tokenisation, datasets, matplotlib,
trackers) live in one temporary directory, removed at the end, pass or fail, unless --keep DIR.

    python docs/check_docs.py [--keep DIR] [--max-steps N] [--with-shared] [--docs FILE ...]

Exit status 1 when a command that was run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PLACEHOLDERS = re.compile(r"\[|\.\.\.|\||\b(RUN_DIR|OUT_DIR|NEW_DIR|REPO_ID|FILE|TEXT|NAME|DIR|C1|C2|K|N|S)\b|path/to")
ACCT = re.compile(r"^(acct|python -m acct)(\s|$)|^torchrun ")
WRITES = re.compile(r"^(acct|python -m acct) (train|export)\b")  # commands that refuse a folder that exists
SHARED = REPO.parent / "shared"
BUDGET_VARIABLES = ("ACCT_OPTIM__MAX_STEPS", "ACCT_EVAL_EVERY_N_STEPS")
SEEDS = 2  # seeds per arm of a documented study, at most: two give a spread over seeds
# The docs' real-MMLU examples: the CSV copy beside the repository and the run trained on it.
NEEDS_SHARED = ("../shared", "runs/mmlu")

# Files that the docs' commands read and whose content the docs describe in prose.
FIXTURES = {
    "q.jsonl": [
        {"question": "Which of these numbers fits?", "choices": ["4", "8", "11", "16"], "task": "odd_number", "answer": 2},
        {"question": "Pick the word that belongs.", "choices": ["pear", "dog", "hammer"], "task": "fruit_word", "answer": "A"},
        {"question": "Pick the word that belongs.", "choices": ["dog", "apple"]},
    ],
}


# Files whose content the docs give only in a comment.
TEXT_FIXTURES = {
    "scaled.yaml": "loss: {task_weighting: task_scaled, task_weighting_options: {scales: {even_number: 3.0}}}\n",
}


@dataclass
class Example:
    """One documented command and the output the doc shows under it (empty when none)."""

    doc: Path
    command: str
    shown: list[str]

    @property
    def expected_error(self) -> str | None:
        first = next((line.strip() for line in self.shown if line.strip()), "")
        return first if first.startswith("error:") else None


def shown_files(path: Path) -> dict[str, str]:
    """Files a doc shows with `$ cat NAME` in a fenced block: the lines up to the next `$ ` prompt."""
    files: dict[str, str] = {}
    name, lines, fenced = None, [], False
    for raw in path.read_text(encoding="utf-8").splitlines() + ["```"]:
        prompt = raw.startswith("$ ") or raw.lstrip().startswith("```")
        if name is not None and prompt:
            files[name] = "\n".join(lines) + "\n"
            name, lines = None, []
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced and raw.startswith("$ cat "):
            name = re.sub(r"\s+#.*$", "", raw[len("$ cat "):]).strip()
        elif name is not None:
            lines.append(raw)
    return files


def examples(path: Path) -> list[Example]:
    """The acct commands in the fenced code blocks of one Markdown file, in order, with their shown output."""
    found: list[Example] = []
    fenced, pending, current = False, "", None
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("```"):
            fenced, pending, current = not fenced, "", None
            continue
        if not fenced:
            continue
        if current is not None and not raw.startswith("$ ") and not pending:
            current.shown.append(raw)  # output under a `$ acct ...` prompt, up to the next prompt
            continue
        current = None
        prompted = raw.startswith("$ ") or pending.startswith("$ ")
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        line = line.removeprefix("$ ").strip()
        if ACCT.match(line):
            found.append(Example(path, re.sub(r"\s+#.*$", "", line).strip(), []))
            if prompted:
                current = found[-1]
    return found


def why_not_run(command: str, with_shared: bool) -> str | None:
    if command.startswith("torchrun"):
        return "torchrun launch"
    if PLACEHOLDERS.search(command):
        return "synopsis"
    if any(path in command for path in NEEDS_SHARED):
        if not with_shared:
            return "real MMLU data in ../shared: pass --with-shared"
        if not SHARED.is_dir():
            return f"needs {SHARED}"
    return None


def needs_hub(argv: list[str]) -> bool:
    return len(argv) > 1 and argv[1] in ("train", "ablate") and "--preset" not in argv and "--resume" not in argv


def budget(argv: list[str], max_steps: int) -> list[str]:
    out = list(argv)
    if "--max-steps" in out:
        out[out.index("--max-steps") + 1] = str(max_steps)
    if "--eval-every-n-steps" in out:
        out[out.index("--eval-every-n-steps") + 1] = str(max_steps)
    if len(out) > 1 and out[1] == "ablate":
        # Fewer seeds per arm: the check is that the study runs, not what it finds.
        if "--seeds" in out:
            at = out.index("--seeds") + 1
            out[at] = str(min(int(out[at]), SEEDS))
        else:
            out += ["--seeds", str(SEEDS)]
        if "--allow-identical" not in out:
            # A cut budget can end before the curriculum first acts, which the study's guard refuses;
            # the documented budget does not, so the check lets the cut study run.
            out.append("--allow-identical")
    return out


def redirect(argv: list[str]) -> tuple[list[str], str | None]:
    """Split `acct ... > FILE` into the command and FILE (None without a redirection)."""
    if ">" not in argv:
        return argv, None
    at = argv.index(">")
    if at != len(argv) - 2:
        raise ValueError(f"cannot follow this redirection: {shlex.join(argv)}")
    return argv[:at], argv[at + 1]


def run_one(example: Example, work: Path, env: dict[str, str], max_steps: int) -> tuple[bool, str, str]:
    """Run one documented command in `work`; (passed, what was expected, the output to show when it failed)."""
    command = example.command
    if command.startswith("python -m acct"):
        command = "acct" + command[len("python -m acct"):]
    argv, stdout_file = redirect(shlex.split(command.replace("../shared", str(SHARED))))
    error = example.expected_error
    hub = error is None and needs_hub(argv)
    if error is None:
        argv = budget(argv, max_steps)
    else:  # as written: the documented error can name the budget
        env = {k: v for k, v in env.items() if k not in BUDGET_VARIABLES}
    try:
        result = subprocess.run([sys.executable, "-m", "acct", *argv[1:]], cwd=work, env=env,
                                capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        return False, "", f"timed out after {exc.timeout:.0f} s"
    if stdout_file is not None:
        target = work / stdout_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result.stdout, encoding="utf-8")
    stderr = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in stderr if line.startswith("error:")]
    if error is not None:
        ok, expected = result.returncode != 0 and errors == [error], " (the documented error expected)"
    elif hub:
        ok = result.returncode == 2 and len(stderr) == 1 and len(errors) == 1 and "Hugging Face" in errors[0]
        expected = " (offline: one-line failure expected)"
    else:
        ok, expected = result.returncode == 0, ""
    detail = "\n".join("     " + line for line in (result.stdout + result.stderr).strip().splitlines()[-15:])
    if error is not None and not ok:
        detail = f"     expected: {error}\n     exit {result.returncode}, got:\n{detail}"
    return ok, expected, detail


def prepare(work: Path, docs: list[Path]) -> dict[str, str]:
    """Write the files the docs' commands read into `work`; the environment the commands run in."""
    for name, rows in FIXTURES.items():
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for name, text in TEXT_FIXTURES.items():
        (work / name).write_text(text, encoding="utf-8")
    for doc in docs:
        for name, text in shown_files(doc).items():
            (work / name).write_text(text, encoding="utf-8")
    # The plugin examples, at the paths the docs give them.
    shutil.copytree(REPO / "docs" / "examples", work / "docs" / "examples", dirs_exist_ok=True)
    # Every cache and tracker store inside the scratch directory, so that removing it leaves nothing behind.
    caches = work / ".caches"
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "ACCT_DEVICE": "cpu", "ACCT_CACHE_DIR": str(caches / "acct"), "HF_HOME": str(caches / "huggingface"),
            "HF_DATASETS_CACHE": str(caches / "huggingface" / "datasets"), "MPLCONFIGDIR": str(caches / "matplotlib"),
            "TRACKIO_DIR": str(caches / "trackio"), "MLFLOW_TRACKING_URI": (caches / "mlruns").as_uri(),
            "WANDB_MODE": "offline", "TMPDIR": str(caches / "tmp"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Run in this directory and keep it (default: a temporary one, removed).")
    parser.add_argument("--max-steps", type=int, default=20, help="Training steps of every documented run.")
    parser.add_argument("--with-shared", action="store_true", help="Also run the examples on the real MMLU copy in ../shared.")
    parser.add_argument("--docs", type=Path, nargs="+", help="Only these Markdown files, in this order (default: all).")
    args = parser.parse_args()
    docs = [path.resolve() for path in args.docs] if args.docs else DOCS
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="acct-docs-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        env = prepare(work, docs)
        (work / ".caches" / "tmp").mkdir(parents=True, exist_ok=True)
        # The budget of every run the docs show: a few steps, one validation at the end.
        env.update(zip(BUDGET_VARIABLES, (str(args.max_steps), str(args.max_steps))))
        failed, ran, skipped, written = [], 0, [], set()
        for doc in docs:
            for example in examples(doc):
                where = f"{doc.relative_to(REPO) if doc.is_relative_to(REPO) else doc}: {example.command}"
                reason = why_not_run(example.command, args.with_shared)
                if reason is None and example.command in written:
                    # The same `acct train` or `acct export` shown twice writes one folder; a second would
                    # be refused, since the folder exists.
                    reason = "the same command as above: its folder exists"
                if reason is None and WRITES.match(example.command):
                    written.add(example.command)
                if reason is not None:
                    skipped.append(f"{where}  ({reason})")
                    continue
                ok, expected, detail = run_one(example, work, env, args.max_steps)
                ran += 1
                print(f"{'ok  ' if ok else 'FAIL'} {where}{expected}", flush=True)
                if not ok:
                    failed.append(where)
                    print(detail, flush=True)
        for line in skipped:
            print(f"not run: {line}")
        where = f"kept in {work}" if args.keep else "scratch directory removed"
        print(f"{ran} documented commands run, {len(failed)} failed, {len(skipped)} not run; {where}")
        return 1 if failed else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
