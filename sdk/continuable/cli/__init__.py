"""`continuable`, the command line of ContinuableJob (also the kubectl plugin
`kubectl continuable`): `status`, `interrupt`, `restart` and `logs`.

Only this package imports typer, rich and (on first use) the Kubernetes client, so
`import continuable` in a job stays light. Install it with the `cli` extra.
"""

from continuable.cli.app import kubectl_main, main, make_app

__all__ = ["kubectl_main", "main", "make_app"]
