"""What the SQL-backed stores (PostgreSQL, SQLite, Supabase) share: rows <-> domain objects."""
