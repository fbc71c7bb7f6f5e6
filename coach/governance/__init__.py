"""Running an organization: its settings and branding, data retention, and the admins' and operators'
dashboards."""
