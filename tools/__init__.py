"""Developer tools run by hand (not part of the app): ``python tools/<name>.py``."""
