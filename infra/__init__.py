"""Yiwang infrastructure as code (Pulumi, Python).

``infra`` is importable from the repository root so tests and the Pulumi programs share one
library (:mod:`infra.yiwang_infra`). Each Pulumi project (``national``, ``province``,
``department``) and the policy pack put the repository root on ``sys.path`` themselves.
"""
