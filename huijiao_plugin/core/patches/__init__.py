"""变化图斑 change patches: dataset ``bghtb``, workflow, comparisons, field packages, atlas, checklist."""

from __future__ import annotations
