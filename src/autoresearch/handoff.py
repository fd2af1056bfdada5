"""The model handoff's old import path (it lives in run/handoff.py now).

The frozen prepare.py of workspaces made before the package had layers imports
`autoresearch.handoff`; a frozen file must keep working, so this name stays.
"""

from autoresearch.run.handoff import *  # noqa: F401,F403
from autoresearch.run.handoff import causality_violation, export_model, load_model  # noqa: F401
