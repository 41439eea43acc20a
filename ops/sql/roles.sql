-- ChargeIndia Hub: the owner role and the least-privilege application role.
--
-- Run with psql as a superuser (or, on a managed PostgreSQL, a role that may
-- create roles and is a member of both hub roles), connected to the hub's
-- database:
--
--   psql "postgresql://postgres@db.example.in/chargeindia" \
--        -v schema=hub -f ops/sql/roles.sql
--
-- Variables (psql -v NAME=VALUE), with their defaults:
--   schema      hub        the schema that holds the hub's tables (HUB_DATABASE_SCHEMA)
--   owner_role  hub_owner  owns the schema and every object in it; runs `hub migrate`
--   app_role    hub_app    what `hub web`, `hub worker` and the operator commands use
--
-- What it does, every run (it is idempotent):
--   1. creates both roles if they are missing (LOGIN, no password: set one with
--      \password, or use peer/certificate authentication);
--   2. creates the schema if it is missing and gives it to the owner role.
-- Once the schema is migrated (hub_events exists) it also:
--   3. hands every table, sequence, function and type in the schema to the owner
--      role (a schema first migrated by a superuser is adopted this way);
--   4. grants the application role exactly what the code needs (below);
--   5. sets default privileges for tables the owner role creates later.
--
-- A fresh installation therefore runs it twice:
--   psql ... -v schema=hub -f ops/sql/roles.sql      # roles and schema
--   HUB_DATABASE_URL=<owner URL> HUB_DATABASE_SCHEMA=hub hub migrate
--   psql ... -v schema=hub -f ops/sql/roles.sql      # ownership and grants
-- and it is run again after every `hub migrate` of an upgrade (docs/operations.md).
-- Until the second run the application role has no privileges on the tables at
-- all, so a forgotten step fails loudly instead of leaving the role too strong.
--
-- Why the application role needs no UPDATE, DELETE or TRUNCATE on the event
-- tables: the eventsourcing library serialises writers with
-- `LOCK TABLE hub_events IN EXCLUSIVE MODE`, and PostgreSQL only lets a role take
-- that lock if it holds UPDATE, DELETE or TRUNCATE on the table. The hub's
-- recorder (hub/infra/chain.py, ChainedApplicationRecorder) replaces that lock
-- with a transaction-level advisory lock, pg_advisory_xact_lock(hashtext(
-- '<schema>.hub_events')), taken before notification ids are drawn and held
-- until commit: the same guarantee (ids commit in order, so followers never skip
-- an id that commits later) with only SELECT and INSERT. The append-only
-- triggers that `hub migrate` installs stay as a second wall: they also stop
-- the owner role, which holds every privilege on its own tables.
--
-- The owner role can drop those triggers; keep its password away from the
-- machines that run `hub web` and `hub worker`.

\set ON_ERROR_STOP on
\if :{?schema}
\else
  \set schema hub
\endif
\if :{?owner_role}
\else
  \set owner_role hub_owner
\endif
\if :{?app_role}
\else
  \set app_role hub_app
\endif

\echo 'ChargeIndia Hub roles: schema' :"schema" ', owner' :"owner_role" ', application' :"app_role"

BEGIN;

-- 1. Roles ----------------------------------------------------------------------
SELECT format('CREATE ROLE %I LOGIN', :'owner_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner_role') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec

SELECT format('GRANT CONNECT ON DATABASE %I TO %I, %I', current_database(), :'owner_role', :'app_role') \gexec

-- 2. Schema ---------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"owner_role";
ALTER SCHEMA :"schema" OWNER TO :"owner_role";
-- Nobody but the owner creates objects in it (on PostgreSQL 14 and older PUBLIC
-- may CREATE in the `public` schema; a dedicated schema is the better choice).
REVOKE CREATE ON SCHEMA :"schema" FROM PUBLIC;
GRANT USAGE ON SCHEMA :"schema" TO :"app_role";

SELECT to_regclass(format('%I.hub_events', :'schema')) IS NOT NULL AS hub_migrated \gset
\if :hub_migrated

-- 3. Everything in the schema belongs to the owner role ---------------------------
-- Tables (their serial sequences follow them), then standalone sequences,
-- views, functions (hub_forbid_mutation, the library's es_insert_events_*) and
-- composite types (the library's stored_event_*). `hub migrate` re-creates the
-- triggers and functions, which only their owner may do.
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
              n.nspname, c.relname, :'owner_role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = :'schema' AND c.relkind IN ('r', 'p', 'v', 'm')
   AND pg_get_userbyid(c.relowner) <> :'owner_role' \gexec
SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, :'owner_role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = :'schema' AND c.relkind = 'S'
   AND pg_get_userbyid(c.relowner) <> :'owner_role' \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'owner_role')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = :'schema' AND pg_get_userbyid(p.proowner) <> :'owner_role' \gexec
SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, :'owner_role')
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       LEFT JOIN pg_class c ON c.oid = t.typrelid
 WHERE n.nspname = :'schema' AND t.typtype IN ('c', 'd', 'e', 'r')
   AND (t.typrelid = 0 OR c.relkind = 'c')
   AND pg_get_userbyid(t.typowner) <> :'owner_role' \gexec

-- 4. What the application role may do ------------------------------------------------
-- Tables the code creates (grep "CREATE TABLE" in hub/, projections/, scheduler/),
-- as of schema version 2:
--
--   table                  app role                         written by
--   hub_events             SELECT, INSERT                   every command and request (eventsourcing)
--   hub_audit_chain        SELECT, INSERT                   the same transaction (hub/infra/chain.py)
--   hub_audit_checkpoints  SELECT, INSERT                   retired (HMAC checkpoints of older databases)
--   hub_audit_leaves, hub_audit_nodes, hub_audit_tree_heads, hub_audit_keys
--                          SELECT, INSERT                   hub worker, hub audit checkpoint (hub/infra/tlog.py)
--   hub_schema             SELECT                           hub migrate only (owner)
--   hub_key_fingerprint    SELECT                           hub migrate only (owner)
--   hub_tracking           SELECT, INSERT, UPDATE, DELETE   every follower (hub/infra/eventlog.py)
--   hub_deliveries         SELECT, INSERT, UPDATE, DELETE   dispatchers and senders (scheduler/)
--   hub_location_audience  SELECT, INSERT, DELETE           the forwarding dispatcher: who still sees each Location
--   hub_snapshots          SELECT, INSERT, DELETE           every process: the snapshot cache (schema 3)
--   view_*                 SELECT, INSERT, UPDATE, DELETE   projections; rebuilds empty them with DELETE
--   hub_cache_version      SELECT, UPDATE                   the views' triggers (hub/infra/invalidation.py)
--   hub_console_sessions, hub_console_logins, hub_console_jobs
--                          SELECT, INSERT, UPDATE, DELETE   hub web: the operations console (hub/services/console.py)
--   hub_audit_subscriptions, hub_audit_push_position
--                          SELECT, INSERT, UPDATE, DELETE   checkpoint pushes to witnesses (scheduler/checkpoints.py,
--                                                           schema 5)
--
-- No role but the owner gets TRUNCATE, REFERENCES or TRIGGER on anything.

-- The event store: read and append, nothing else.
REVOKE ALL ON :"schema".hub_events, :"schema".hub_audit_chain FROM :"app_role";
GRANT SELECT, INSERT ON :"schema".hub_events, :"schema".hub_audit_chain TO :"app_role";
REVOKE ALL ON SEQUENCE :"schema".hub_events_notification_id_seq FROM :"app_role";
GRANT USAGE ON SEQUENCE :"schema".hub_events_notification_id_seq TO :"app_role";  -- nextval() of the bigserial

-- Signed checkpoints are evidence too: added, never changed (INSERT ... ON CONFLICT DO NOTHING).
REVOKE ALL ON :"schema".hub_audit_checkpoints FROM :"app_role";
GRANT SELECT, INSERT ON :"schema".hub_audit_checkpoints TO :"app_role";
-- The Merkle tree over the log and its signed checkpoints: appended, never changed.
REVOKE ALL ON :"schema".hub_audit_leaves, :"schema".hub_audit_nodes, :"schema".hub_audit_tree_heads,
    :"schema".hub_audit_keys FROM :"app_role";
GRANT SELECT, INSERT ON :"schema".hub_audit_leaves, :"schema".hub_audit_nodes, :"schema".hub_audit_tree_heads,
    :"schema".hub_audit_keys TO :"app_role";
GRANT USAGE ON SEQUENCE :"schema".hub_audit_tree_heads_id_seq TO :"app_role";

-- The schema version is the migration's business.
REVOKE ALL ON :"schema".hub_schema FROM :"app_role";
GRANT SELECT ON :"schema".hub_schema TO :"app_role";
-- So is the fingerprint of HUB_SECRET_KEY, which every process checks its own key against.
REVOKE ALL ON :"schema".hub_key_fingerprint FROM :"app_role";
GRANT SELECT ON :"schema".hub_key_fingerprint TO :"app_role";

-- Tables the application maintains: follower positions, the delivery queue, the views.
REVOKE ALL ON :"schema".hub_tracking, :"schema".hub_deliveries,
              :"schema".view_platforms, :"schema".view_platform_tokens, :"schema".view_parties,
              :"schema".view_objects, :"schema".view_routing_rules, :"schema".view_commands
  FROM :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON :"schema".hub_tracking, :"schema".hub_deliveries,
              :"schema".view_platforms, :"schema".view_platform_tokens, :"schema".view_parties,
              :"schema".view_objects, :"schema".view_routing_rules, :"schema".view_commands
  TO :"app_role";
GRANT USAGE ON SEQUENCE :"schema".hub_deliveries_id_seq TO :"app_role";
-- Who was sent each Location and still sees it (scheduler/forwarding.py): rows added and removed.
REVOKE ALL ON :"schema".hub_location_audience FROM :"app_role";
GRANT SELECT, INSERT, DELETE ON :"schema".hub_location_audience TO :"app_role";
-- The web caches' version: raised by the views' triggers (as the writing role), read by web processes.
REVOKE ALL ON :"schema".hub_cache_version FROM :"app_role";
GRANT SELECT, UPDATE ON :"schema".hub_cache_version TO :"app_role";

-- The snapshot cache beside the log (hub/infra/snapshots.py): snapshots are added and the
-- older ones deleted, never updated. Created by the `hub migrate` of schema version 3.
SELECT format('REVOKE ALL ON %I.hub_snapshots FROM %I', :'schema', :'app_role'),
       format('GRANT SELECT, INSERT, DELETE ON %I.hub_snapshots TO %I', :'schema', :'app_role')
 WHERE to_regclass(format('%I.hub_snapshots', :'schema')) IS NOT NULL \gexec

-- The operations console's sessions, failed-login counts and verification runs (docs/console.md).
SELECT format('REVOKE ALL ON %I.%I FROM %I', :'schema', t, :'app_role'),
       format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO %I', :'schema', t, :'app_role')
  FROM unnest(ARRAY['hub_console_sessions', 'hub_console_logins', 'hub_console_jobs']) AS t
 WHERE to_regclass(format('%I.%I', :'schema', t)) IS NOT NULL \gexec
SELECT format('GRANT USAGE ON SEQUENCE %I.hub_console_jobs_id_seq TO %I', :'schema', :'app_role')
 WHERE to_regclass(format('%I.hub_console_jobs_id_seq', :'schema')) IS NOT NULL \gexec

-- Checkpoint pushes to witnesses (scheduler/checkpoints.py): which partners get them, and how
-- far they were queued; rows change. Created by the `hub migrate` of schema version 5.
SELECT format('REVOKE ALL ON %I.%I FROM %I', :'schema', t, :'app_role'),
       format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO %I', :'schema', t, :'app_role')
  FROM unnest(ARRAY['hub_audit_subscriptions', 'hub_audit_push_position']) AS t
 WHERE to_regclass(format('%I.%I', :'schema', t)) IS NOT NULL \gexec

-- 5. Tables a later release creates (`hub migrate` as the owner role) ----------------
-- New tables are views and queues the application maintains; an event table
-- added by a later release is narrowed above, by name, when this file runs again.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA :"schema"
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA :"schema"
  GRANT USAGE ON SEQUENCES TO :"app_role";

-- Tables this file does not know and the application role cannot read: name them.
SELECT format('WARNING: table %I.%I is not covered for %I: grant it, or update ops/sql/roles.sql',
              schemaname, tablename, :'app_role') AS unknown_table
  FROM pg_tables
 WHERE schemaname = :'schema'
   AND NOT has_table_privilege(:'app_role', format('%I.%I', schemaname, tablename), 'SELECT');

COMMIT;
\echo 'done: run this file again after every hub migrate that upgrades the schema'

\else

COMMIT;
\echo 'roles and schema are ready; the schema is not migrated yet.'
\echo 'Next: run hub migrate with HUB_DATABASE_URL of the owner role, then run this file again.'

\endif
