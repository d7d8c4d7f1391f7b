"""agentic-sandbox: a reconciling controller for AI coding agent sandboxes."""

__version__ = "0.1.0"
