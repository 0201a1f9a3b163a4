"""The official JSON-Schema-Test-Suite, as shipped inside the installed jsonschema's sdist.

Nothing of it is committed: the sdist of the installed ``jsonschema`` version is fetched from the
package index once (``pip download --no-binary``) and its ``json/tests`` tree is kept under
``${AGENTGRAPH_CACHE:-~/.cache/agentgraph}/json-schema-test-suite/<version>/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tests.realcli import cache_root

DRAFT = "draft2020-12"


class SuiteUnavailable(Exception):
    """The sdist could not be fetched or holds no test suite (message says why)."""


@dataclass(frozen=True, slots=True)
class SuiteCase:
    """One instance of one schema group: its file, descriptions, schema, data and expectation."""

    file: str
    group: str
    test: str
    schema: Any
    data: Any
    valid: bool


def suite_dir() -> Path:
    """``.../<draft dirs>`` of the suite matching the installed jsonschema, fetched on first use."""
    release = version("jsonschema")
    root = cache_root() / "json-schema-test-suite" / release
    if (root / DRAFT).is_dir():
        return root
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "-q", "-d", tmp, f"jsonschema=={release}"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        archives = list(Path(tmp).glob("jsonschema-*.tar.gz"))
        if out.returncode != 0 or not archives:
            raise SuiteUnavailable(f"{' '.join(command)} failed ({out.returncode}): {out.stderr.strip()}")
        staging = Path(tempfile.mkdtemp(dir=root.parent if root.parent.exists() else None))
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) > 3 and parts[1:3] == ("json", "tests") and member.isfile():
                    target = staging.joinpath(*parts[3:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None, member.name
                    target.write_bytes(source.read())
    if not (staging / DRAFT).is_dir():
        raise SuiteUnavailable(f"the jsonschema {release} sdist has no json/tests/{DRAFT}")
    root.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # another process published first
        os.rename(staging, root)
    return root


def cases(draft: str = DRAFT) -> Iterator[SuiteCase]:
    """Every test of the draft, optional ones (format, bignum, ECMA regex, ...) included."""
    base = suite_dir() / draft
    for path in sorted(base.rglob("*.json")):
        for group in json.loads(path.read_text()):
            for test in group["tests"]:
                yield SuiteCase(str(path.relative_to(base)), group["description"], test["description"],
                                group["schema"], test["data"], test["valid"])
