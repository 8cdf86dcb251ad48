-- Runs once, when the PostgreSQL volume is first created (docker-entrypoint-initdb.d).
-- The server's own database (POSTGRES_DB=almanac) is Almanac's catalog; `sources` is a source database
-- for `almanac ingest-db`: load your tables into it, then index them by name (see docker/compose.yaml).
CREATE DATABASE sources;
