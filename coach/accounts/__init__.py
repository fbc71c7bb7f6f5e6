"""Accounts: users (global across organizations), passwords and password resets."""
