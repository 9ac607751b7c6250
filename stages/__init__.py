"""Thin DVC stage entry points: ``python -m stages.<name>``. Arguments, I/O, a call into galaxy_xai."""
