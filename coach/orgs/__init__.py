"""Organizations (the tenants), memberships with roles, and invitations."""
