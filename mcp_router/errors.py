"""The exceptions mcp-router raises on purpose.

    Exception
     └── MCPRouterError          anything the user or the calling model can act on
          ├── ConfigError        a bad config file or MCP_ROUTER_* variable (names the key)
          ├── StoreError         the database cannot be opened, written or read (names the file)
          ├── UnknownModelError  a model the price catalog does not know (also a ValueError)
          ├── BudgetExceeded     the monthly cap is reached; the call must not spend more
          ├── PathRefused        a file delegate_to_haiku may not read (names the rule)
          ├── DelegationError    the delegate model could not answer (API down, no key, …)
          ├── DelegationGuarded  work the router is sure is above Haiku, sent without ``force``
          └── TeamDBError        the team database cannot be used (no driver, unreachable, newer schema)

Bad arguments to a function raise plain ``ValueError``. The CLI turns every ``MCPRouterError``
and ``ValueError`` into one ``Error: …`` line; the MCP server turns them into tool errors.
"""

from __future__ import annotations


class MCPRouterError(Exception):
    """Base class: the message is written for the person or model that has to act on it."""


class ConfigError(MCPRouterError):
    """The configuration file or an ``MCP_ROUTER_*`` variable is invalid."""


class StoreError(MCPRouterError):
    """The SQLite file is unwritable, corrupt, or from a newer mcp-router."""


class UnknownModelError(MCPRouterError, ValueError):
    """A model id or alias that the price catalog does not know."""

    def __init__(self, model: str, suggestions: list[str]):
        self.model = model
        self.suggestions = suggestions
        hint = f"; closest known: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown model {model!r}{hint}")


class BudgetExceeded(MCPRouterError):
    """Month-to-date spend has reached the monthly cap."""


class PathRefused(MCPRouterError):
    """A path outside the allowed roots, a secret, a binary or too large a file."""


class DelegationError(MCPRouterError):
    """The delegate model did not produce an answer."""


class TeamDBError(MCPRouterError):
    """The team database is not configured, cannot be reached, or has a schema this version does not know."""


class TeamSyncRefused(TeamDBError):
    """The team database was reached but refused this machine's rows (e.g. a reader role, a policy)."""


class DelegationGuarded(MCPRouterError):
    """delegate_to_haiku refused work the router is sure is above Haiku (the caller may pass ``force``)."""
