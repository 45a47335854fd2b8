"""Practice-management connectors (issue 19): ezyVet and Provet Cloud keep the day in step, and
arrivals are written back. `server.connectors.core` is shared; each system has its module."""
