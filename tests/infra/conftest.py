"""Make ``infra`` (and ``controller``) importable from the repository root."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# kubernetes_validate re-reads and re-parses its JSON schemas (including the large
# _definitions.json) on every call; the files never change during a run, so parse them once.
import functools  # noqa: E402

import kubernetes_validate.utils as _kv_utils  # noqa: E402

_kv_utils.schema_contents = functools.cache(_kv_utils.schema_contents)
_kv_utils.all_versions = functools.cache(_kv_utils.all_versions)
