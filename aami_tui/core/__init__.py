"""Everything that talks to PostgreSQL or the filesystem. Never imports Textual."""
