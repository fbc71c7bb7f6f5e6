"""Coach profiles, the organization's taxonomy of what its coaches teach, reviews and their aggregates, and the
public coach directory: a projection of the listed coaches of listed organizations, searched with PostgreSQL's
full-text search and pg_trgm."""
