"""The README's Python examples run as written, in order, in one namespace (as a reader pastes
them into one session)."""
import re

from scripts import PROJECT


def readme_examples():
    """The ```python blocks of README.md, in order."""
    return re.findall(r"```python\n(.*?)```", (PROJECT / "README.md").read_text(), re.S)


def test_the_readme_examples_run(capsys):
    examples = readme_examples()
    assert len(examples) >= 4
    namespace = {}
    for code in examples:
        exec(compile(code, "README.md", "exec"), namespace)
    before, after = (float(line.split(":")[-1])
                     for line in capsys.readouterr().out.splitlines()[:2])
    assert after < before / 20  # the fit in "Using it" learns the spiral
