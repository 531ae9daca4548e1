"""Embedded procedural face world standing in for RaFD, Oulu-CASIA, MMI, CK+, AffectNet, FFHQ.

Faces are a shaded 2.5D height field moved by FACS action units (``render``), drawn from
per-person parameters (``identity``), posed by EMFACS prototypes (``expressions``), photographed
in each database's style (``styles``) and saved in each database's own layout (``writers``).
"""
from .expressions import AUS, PROTOTYPES, expression_aus
from .identity import sample_identities
from .render import render_faces
from .styles import STYLES, render_style
from .world import DATABASES, ensure_world, write_database, write_world

__all__ = ["AUS", "DATABASES", "PROTOTYPES", "STYLES", "ensure_world", "expression_aus",
           "render_faces", "render_style", "sample_identities", "write_database", "write_world"]
