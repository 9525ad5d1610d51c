-- Dispatch in one round trip: `POST /api/tam/run` validates the job and claims its task id in one
-- statement. tam_dispatch_job applies the rule `Job.dispatched` (src/tam/domain/model.py) and replaces
-- tam_claim_job_task, which the API called after a separate read of the job; tam_lock_job_type moves
-- to PL/pgSQL.
--
-- Named before 20261202100000_tam_security.sql, which closes every tam_* function on a fresh database.
-- A database that already ran that file applies this one after it, so this file closes its functions
-- the same way (security invoker, fixed search_path, execute for the owner and service_role only).

drop function if exists tam_claim_job_task(uuid, text);
drop function if exists tam_dispatch_job(uuid, uuid, text, text, timestamptz, timestamptz);

-- The active jobs of a project, for the one-active-job check (here and in tam_add_job_exclusive).
-- Without it, a plan made before the statistics caught up with a burst of new jobs combined the
-- status index (every pending job of every project) with the project index: 4.5 ms per dispatch at
-- 30,000 pending jobs, against 0.03 ms.
create index if not exists tam_job_queue_active_project_idx on tam_job_queue (project_id)
    where status in ('pending', 'running');

-- The same lock as before (20261202000000_tam_durable_jobs.sql), in PL/pgSQL: PostgreSQL plans a
-- non-inlined SQL function again at every call (about 0.08 ms of CPU per dispatch here), PL/pgSQL
-- keeps its plans.
create or replace function tam_lock_job_type(p_project_id uuid, p_job_type text) returns void
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(
        hashtextextended('tam_job_queue:' || p_project_id || ':' || tam_job_type_key(p_job_type), 0));
end;
$$;

-- outcome: claimed | requeued (enqueue the job under p_task_id), kept (it has a live task), refused
-- (another job of the type is active and dispatched: this one was cancelled; `active` is that job),
-- other_project | other_type | finished (nothing changed). `job` is the row as the call left it (the
-- PostgreSQL adapter selects `(job).*`, its columns: asyncpg decodes no composite that holds a jsonb
-- column with tam's text codec; PostgREST sends it as an object); `active` the active job's row as
-- JSON (refused only); previous_task_id the task id a requeue replaced. No such job: P0002 (NotFound).
create or replace function tam_dispatch_job(
    p_job_id uuid, p_project_id uuid, p_job_type text, p_task_id text, p_at timestamptz, p_stale_before timestamptz
) returns table (outcome text, previous_task_id text, job tam_job_queue, active jsonb)
language plpgsql as $$
#variable_conflict use_column
declare
    v_job tam_job_queue;
    v_new tam_job_queue;
    v_active tam_job_queue;
begin
    -- The claim commits without waiting for its WAL flush (for the rest of the calling transaction:
    -- alone, as the adapters call it). What follows it, the message in Redis, is not fsynced either; a
    -- PostgreSQL crash may forget the claims of its last moments (3 x wal_writer_delay, 0.6 s by
    -- default): a message whose claim was lost still runs the job (tam_start_job accepts a job without
    -- a task id) or is fenced off by the lease; a repeated POST /api/tam/run claims again. Under a busy
    -- disk the flush costs more than the rest of the call (docs/benchmarks.md, dispatch).
    perform set_config('synchronous_commit', 'off', true);
    -- The lock of the requested (project, type): every claim for it waits here, so the reads below see
    -- the others' claims committed. A request naming the wrong project or type only takes a lock
    -- nobody else needs, and is refused below.
    perform tam_lock_job_type(p_project_id, p_job_type);
    select * into v_job from tam_job_queue q where q.id = p_job_id;
    if not found then
        raise exception using errcode = 'P0002', message = format('job %s not found', p_job_id);
    end if;
    job := v_job;
    if v_job.project_id <> p_project_id then
        outcome := 'other_project';
    elsif tam_job_type_key(v_job.job_type) <> tam_job_type_key(p_job_type) then
        outcome := 'other_type';
    elsif v_job.status not in ('pending', 'running') then
        outcome := 'finished';
    elsif v_job.task_id is not null then
        -- Job.requeued: running, its attempt gone (no heartbeat nor other write since p_stale_before).
        update tam_job_queue q set task_id = p_task_id, updated_at = p_at
         where q.id = p_job_id and q.status = 'running' and q.task_id = v_job.task_id
           and not (q.attempts > 0 and q.heartbeat_at is not null and q.heartbeat_at >= p_stale_before)
           and q.updated_at < p_stale_before
        returning * into v_new;  -- (into `job` would null it when no row is updated)
        if found then
            job := v_new;
            outcome := 'requeued';
            previous_task_id := v_job.task_id;
        else
            outcome := 'kept';
        end if;
    else
        -- The usual case in one statement: claim unless another job of the type is active and dispatched.
        update tam_job_queue q set task_id = p_task_id, updated_at = p_at
         where q.id = p_job_id and q.task_id is null and q.status in ('pending', 'running')
           and not exists (
               select 1 from tam_job_queue o
                where o.project_id = v_job.project_id and o.id <> p_job_id and o.status in ('pending', 'running')
                  and o.task_id is not null and tam_job_type_key(o.job_type) = tam_job_type_key(v_job.job_type))
        returning * into v_new;
        if found then
            job := v_new;
            outcome := 'claimed';
        else
            select * into v_active from tam_job_queue o
             where o.project_id = v_job.project_id and o.id <> p_job_id and o.status in ('pending', 'running')
               and o.task_id is not null and tam_job_type_key(o.job_type) = tam_job_type_key(v_job.job_type)
             order by o.created_at limit 1;
            if v_active.id is not null then
                update tam_job_queue q
                   set status = 'cancelled', message = tam_active_job_message(v_active), finished_at = p_at,
                       updated_at = p_at
                 where q.id = p_job_id and q.status in ('pending', 'running')
                returning * into v_new;
                if found then
                    job := v_new;
                    outcome := 'refused';
                    active := to_jsonb(v_active);
                    return next;
                    return;
                end if;
            end if;
            -- Finished since the read above (a cancel, a worker): report the row as it is now.
            job := tam_job_or_not_found(p_job_id);
            outcome := case when (job).status in ('pending', 'running') then 'kept' else 'finished' end;
        end if;
    end if;
    return next;
end;
$$;

-- Closed like every tam_* function (20261202100000_tam_security.sql): only the owner and service_role
-- execute them. Where Supabase's roles do not exist, nothing is granted to them.
do $close$
declare
    fn text;
begin
    foreach fn in array array[
        'tam_dispatch_job(uuid, uuid, text, text, timestamptz, timestamptz)', 'tam_lock_job_type(uuid, text)'
    ] loop
        execute format('alter function %s security invoker set search_path = public, pg_temp', fn);
        execute format('revoke all on function %s from public', fn);
        if exists (select 1 from pg_roles where rolname = 'anon') then
            execute format('revoke all on function %s from anon', fn);
        end if;
        if exists (select 1 from pg_roles where rolname = 'authenticated') then
            execute format('revoke all on function %s from authenticated', fn);
        end if;
        if exists (select 1 from pg_roles where rolname = 'service_role') then
            execute format('grant execute on function %s to service_role', fn);
        end if;
    end loop;
end
$close$;
