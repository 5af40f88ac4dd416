"""Tables and plots from kafkasim run and sweep directories (reads the results contract only)."""

__all__: list[str] = []
