"""Platform plumbing shared by every domain: mail, health."""
