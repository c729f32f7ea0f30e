"""Every hook is documented in docs/plugin_hooks.md and exercised by a test of its own."""

import re
from pathlib import Path

import pytest

from rpahub_core import hookspecs

ROOT = Path(__file__).parent.parent
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("rpahub_"))


def test_there_are_hooks():
    assert len(HOOKS) >= 15


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docs_section(hook):
    text = (ROOT / "docs" / "plugin_hooks.md").read_text(encoding="utf-8")
    assert re.search(rf"^## `{hook}\(", text, re.M), f"docs/plugin_hooks.md has no '## `{hook}(...)`' section"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_tested(hook):
    sources = [p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_docs.py"]
    assert any(re.search(rf"\b{hook}\b", s) for s in sources), f"no test mentions {hook}"


def test_conformance_lists_every_requirement_id():
    catalogue = (ROOT.parent / "shared" / "spec" / "requirements.md")
    if not catalogue.exists():
        pytest.skip("the requirement catalogue is not beside this checkout")
    ids = set(re.findall(r"^\| (\d\.\d\.\d[a-f]|SEC-\d|ARCH-[1a-d]|7\.[\d.]+) \|", catalogue.read_text(), re.M))
    table = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    listed = set()
    for row in re.findall(r"^\| (\S+)", table, re.M):
        m = re.match(r"(\d\.\d\.\d)([a-f])[–-]([a-f])", row)
        if m:
            listed |= {f"{m.group(1)}{c}" for c in "abcdef"[ord(m.group(2)) - 97: ord(m.group(3)) - 96]}
        else:
            listed.add(row)
    missing = sorted(ids - listed)
    assert not missing, f"docs/conformance.md lacks {missing}"
