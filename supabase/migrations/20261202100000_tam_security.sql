-- Secure by default on Supabase: row-level security, grants and function privileges.
--
-- Supabase serves every table and function of `public` through its Data API (PostgREST), and a Supabase
-- project's default privileges grant `anon`, `authenticated` and `service_role` ALL on every table,
-- function and sequence the `postgres` role creates in `public` (supabase/postgres,
-- migrations/db/init-scripts/00000000000000-initial-schema.sql: `alter default privileges in schema
-- public grant all on tables|functions|sequences to postgres, anon, authenticated, service_role`).
-- PostgreSQL itself grants EXECUTE on every new function to PUBLIC. Without this file the frontend's public
-- (anon) key could read every contact, rewrite verdicts or call tam_record_qualifications over
-- /rest/v1/rpc. Supabase's database linter (splinter) names these findings: 0013 rls_disabled_in_public
-- (ERROR), 0008 rls_enabled_no_policy, 0011 function_search_path_mutable (no search_path in proconfig),
-- 0028/0029 anon/authenticated_security_definer_function_executable. Supabase's knowledge base ("How can I
-- revoke execution of a Postgres function?") notes that a function must be revoked from PUBLIC *and* from
-- anon: revoking one leaves the other grant working.
--
-- Who may do what after this file:
--   table owner (the migrating role, `postgres` on Supabase)   everything; RLS does not apply to the owner
--   service_role (tam's TAM_STORE=supabase, the edge function) select/insert/update/delete on every tam_*
--       table and execute on every tam_* function. Supabase creates it BYPASSRLS; the `tam_backend`
--       policies below let it work where a service_role exists without BYPASSRLS too.
--   authenticated (frontend, signed-in user)  reads tam_projects, tam_companies, tam_contacts,
--       tam_job_queue; inserts a job row giving only id, project_id, job_type, status (pending|running);
--       no update, delete, or function execution.
--   anon (frontend's public key, no session)  nothing.
--
-- It runs on plain PostgreSQL too: where the Supabase roles do not exist, nothing is granted to them and
-- no policy names them (RLS on, no policy = only the owner and BYPASSRLS roles see rows). It never creates
-- roles. Every statement is idempotent: the file can be re-run. It must stay the last migration, or a later
-- migration that creates tam_* tables or functions must apply the same rules (tests/contract/
-- test_security_roles.py finds every tam_* table and function and fails on any left open).

-- Ready for per-user reads (docs/deploy.md, "Security"): on Supabase, set owner_id to auth.uid() when a
-- user creates a project and replace the `tam_read` policies with ones such as
--   create policy tam_read on tam_projects for select to authenticated
--       using (owner_id = (select auth.uid()));
--   create policy tam_read on tam_companies for select to authenticated
--       using (exists (select 1 from tam_projects p where p.id = project_id and p.owner_id = (select auth.uid())));
-- (and the same for tam_contacts, and tam_job_queue's select and insert policies). No foreign key to
-- auth.users here: that schema exists on Supabase only.
alter table tam_projects add column if not exists owner_id uuid;
create index if not exists tam_projects_owner_idx on tam_projects (owner_id);

do $security$
declare
    has_anon boolean := exists (select 1 from pg_roles where rolname = 'anon');
    has_authenticated boolean := exists (select 1 from pg_roles where rolname = 'authenticated');
    has_service boolean := exists (select 1 from pg_roles where rolname = 'service_role');
    -- The frontend's roles present in this cluster, as a grantee list ('' when none).
    browser_roles text := concat_ws(', ',
        case when has_anon then 'anon' end, case when has_authenticated then 'authenticated' end);
    t record;
    f record;
    pol record;
begin
    -- Tables and sequences the migrating role creates later in public are no longer granted to the
    -- browser roles (Supabase's "Hardening the Data API" guide gives the same statements); functions are
    -- no longer executable by PUBLIC. Only where Supabase's roles exist: plain PostgreSQL keeps its
    -- defaults. This changes the defaults of the role running the migration in this database, for all
    -- of its future objects: grant what the frontend needs explicitly (docs/deploy.md, "Security").
    if browser_roles <> '' then
        execute format('alter default privileges in schema public revoke all on tables from %s', browser_roles);
        execute format('alter default privileges in schema public revoke all on sequences from %s', browser_roles);
        execute format('alter default privileges in schema public revoke all on functions from %s', browser_roles);
        -- A per-schema default cannot take away what the global default grants (PostgreSQL docs,
        -- ALTER DEFAULT PRIVILEGES), and EXECUTE to PUBLIC is global: revoke it globally.
        alter default privileges revoke execute on functions from public;
    end if;

    -- Every tam_* table, whoever added it (the migrator's ledger tam_schema_migrations included).
    for t in
        select c.oid::regclass as rel, c.relname
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname like 'tam\_%'
    loop
        execute format('alter table %s enable row level security', t.rel);
        -- Re-running this file recreates its policies.
        for pol in select polname from pg_policy
                  where polrelid = t.rel and polname in ('tam_backend', 'tam_read', 'tam_insert_job') loop
            execute format('drop policy %I on %s', pol.polname, t.rel);
        end loop;
        execute format('revoke all on table %s from public', t.rel);
        if browser_roles <> '' then
            execute format('revoke all on table %s from %s', t.rel, browser_roles);
        end if;
        if has_service then
            execute format('revoke all on table %s from service_role', t.rel);
            execute format('grant select, insert, update, delete on table %s to service_role', t.rel);
            execute format(
                'create policy tam_backend on %s for all to service_role using (true) with check (true)', t.rel);
        end if;
        if has_authenticated
           and t.relname in ('tam_projects', 'tam_companies', 'tam_contacts', 'tam_job_queue') then
            execute format('grant select on table %s to authenticated', t.rel);
            execute format('create policy tam_read on %s for select to authenticated using (true)', t.rel);
        end if;
    end loop;

    -- Sequences (of serial columns) and views named tam_*: none of ours yet, closed the same way.
    for t in
        select c.oid::regclass as rel, c.relkind
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('S', 'v', 'm') and c.relname like 'tam\_%'
    loop
        execute format('revoke all on %s from public', t.rel);
        if browser_roles <> '' then
            execute format('revoke all on %s from %s', t.rel, browser_roles);
        end if;
        if has_service then
            execute format('grant %s on %s to service_role',
                case when t.relkind = 'S' then 'usage, select' else 'select' end, t.rel);
        end if;
    end loop;

    -- The frontend creates a job row and then invokes the edge function: a column-level grant limits it
    -- to the columns it gives (the others keep their defaults: counts and progress 0, timestamps now),
    -- and the policy to a job that has not finished.
    if has_authenticated then
        grant insert (id, project_id, job_type, status) on table tam_job_queue to authenticated;
        create policy tam_insert_job on tam_job_queue for insert to authenticated
            with check (status in ('pending', 'running'));
    end if;

    -- Every tam_* function and procedure, whoever added it: only the owner and service_role execute it;
    -- a fixed search_path (public then pg_temp, so a temporary table cannot shadow ours); security
    -- invoker, so a function never runs with more rights than its caller. None needs definer rights:
    -- the backend calls them as the owner or service_role, which may already do what they do.
    for f in
        select p.oid::regprocedure as fn
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public' and p.proname like 'tam\_%' and p.prokind in ('f', 'p')
    loop
        execute format('alter routine %s security invoker set search_path = public, pg_temp', f.fn);
        execute format('revoke all on routine %s from public', f.fn);
        if browser_roles <> '' then
            execute format('revoke all on routine %s from %s', f.fn, browser_roles);
        end if;
        if has_service then
            execute format('grant execute on routine %s to service_role', f.fn);
        end if;
    end loop;
end
$security$;
