"""Privacy: a person's and an organization's data export, deleting an account and closing an organization."""
