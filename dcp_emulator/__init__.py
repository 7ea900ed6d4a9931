"""dcp-emulator: a local emulator and test double of Optimizely's Dynamic Customer Profiles APIs."""

__version__ = "0.1.0"


def create_app(config=None):
    """Build one independent emulator app (see ``dcp_emulator.app.create_app``)."""
    from .app import create_app as _create_app

    return _create_app(config)


__all__ = ["__version__", "create_app"]
