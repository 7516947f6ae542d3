-- Runs once, when the postgres container first initialises its data directory (psql runs it,
-- hence the \connect). The application connects as `platform`: not a superuser and without
-- BYPASSRLS, so the row-level security policies the migrations create (FORCE'd, so they bind
-- the tables' owner too) wall each practice in, also for raw SQL.
CREATE ROLE platform LOGIN PASSWORD 'platform' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
ALTER DATABASE platform OWNER TO platform;
\connect platform
ALTER SCHEMA public OWNER TO platform;
