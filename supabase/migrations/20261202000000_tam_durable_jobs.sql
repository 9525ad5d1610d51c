-- Durable jobs: the job lease with its fencing token, at most one active job per (project, job type),
-- and verdicts that never overwrite one already written. Each function applies the rule of the same
-- name on the Job entity (src/tam/domain/model.py: start, progressed, finished_as, released, requeued);
-- tests/contract/test_job_rules.py checks every store against those rules.
--
-- The fencing token of an attempt is `attempts` as its start set it: a newer attempt increments it, so
-- the older one's progress and finish are refused (it sees the row it did not change, and stops).

drop function if exists tam_start_job(uuid, timestamptz);
drop function if exists tam_save_job_progress(uuid, integer, integer, integer, integer, text, jsonb, timestamptz);
drop function if exists tam_cancel_job(uuid, timestamptz);
drop function if exists tam_finish_job(uuid, text, text, text, timestamptz);
drop function if exists tam_claim_job_task(uuid, text);

-- One spelling per job type ('find_contacts' and 'findContacts' are the same type).
create or replace function tam_job_type_key(p_job_type text) returns text
language sql immutable as $$
    select lower(replace(p_job_type, '_', ''));
$$;

-- Serialises the decisions about one (project, job type) across every process, until the transaction ends.
create or replace function tam_lock_job_type(p_project_id uuid, p_job_type text) returns void
language sql as $$
    select pg_advisory_xact_lock(hashtextextended('tam_job_queue:' || p_project_id || ':' || tam_job_type_key(p_job_type), 0));
$$;

create or replace function tam_active_job_message(p_job tam_job_queue) returns text
language sql immutable as $$
    select format('job %s of type %s is already %s for this project', p_job.id, p_job.job_type, p_job.status);
$$;

-- Start an attempt, or return no row: the job is finished, the message's task was superseded, or a live
-- attempt (heartbeat not older than p_stale_before) holds it.
create or replace function tam_start_job(
    p_job_id uuid, p_at timestamptz, p_task_id text default null, p_stale_before timestamptz default null
) returns setof tam_job_queue
language plpgsql as $$
declare
    v_job tam_job_queue;
begin
    update tam_job_queue
       set status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, p_at),
           heartbeat_at = p_at, updated_at = p_at
     where id = p_job_id
       and status in ('pending', 'running')
       and (p_task_id is null or task_id is null or task_id = p_task_id)
       and not (p_stale_before is not null and status = 'running' and attempts > 0
                and heartbeat_at is not null and heartbeat_at >= p_stale_before)
    returning * into v_job;
    if v_job.id is null then
        perform tam_job_or_not_found(p_job_id);
        return;
    end if;
    return next v_job;
end;
$$;

create or replace function tam_save_job_progress(
    p_job_id uuid, p_progress integer, p_items_total integer, p_items_done integer, p_items_failed integer,
    p_message text, p_usage jsonb, p_at timestamptz, p_token integer default null
) returns tam_job_queue
language plpgsql as $$
declare
    v_job tam_job_queue;
begin
    update tam_job_queue
       set progress = greatest(progress, least(greatest(p_progress, 0), 100)),
           items_total = p_items_total, items_done = p_items_done, items_failed = p_items_failed,
           message = p_message, usage = coalesce(p_usage, '{}'::jsonb), heartbeat_at = p_at, updated_at = p_at
     where id = p_job_id and status = 'running' and (p_token is null or attempts = p_token)
    returning * into v_job;
    if v_job.id is null then
        v_job := tam_job_or_not_found(p_job_id);
    end if;
    return v_job;
end;
$$;

create or replace function tam_finish_job(
    p_job_id uuid, p_status text, p_message text, p_error text, p_at timestamptz, p_token integer default null
) returns tam_job_queue
language plpgsql as $$
declare
    v_job tam_job_queue;
begin
    update tam_job_queue
       set status = p_status,
           progress = case when p_status = 'completed' then 100 else progress end,
           message = coalesce(p_message, message), error = p_error, finished_at = p_at, updated_at = p_at
     where id = p_job_id and status in ('pending', 'running') and (p_token is null or attempts = p_token)
    returning * into v_job;
    if v_job.id is null then  -- finished already, a stale attempt, or no such job
        v_job := tam_job_or_not_found(p_job_id);
    end if;
    return v_job;
end;
$$;

create or replace function tam_cancel_job(p_job_id uuid, p_at timestamptz) returns tam_job_queue
language sql as $$
    select tam_finish_job(p_job_id, 'cancelled', null, null, p_at, null);
$$;

create or replace function tam_release_job(p_job_id uuid, p_token integer, p_at timestamptz) returns void
language plpgsql as $$
begin
    update tam_job_queue set heartbeat_at = null, updated_at = p_at
     where id = p_job_id and status = 'running' and attempts = p_token;
    if not found then
        perform tam_job_or_not_found(p_job_id);
    end if;
end;
$$;

-- A running job whose attempt is gone (no heartbeat nor other write since p_stale_before) gets a new task
-- id; true for the one caller that changed it. The update makes the row fresh for another timeout.
create or replace function tam_requeue_job(
    p_job_id uuid, p_old_task_id text, p_new_task_id text, p_stale_before timestamptz
) returns boolean
language plpgsql as $$
begin
    update tam_job_queue set task_id = p_new_task_id, updated_at = now()
     where id = p_job_id and status = 'running' and task_id is not distinct from p_old_task_id
       and not (attempts > 0 and heartbeat_at is not null and heartbeat_at >= p_stale_before)
       and updated_at < p_stale_before;
    if found then
        return true;
    end if;
    perform tam_job_or_not_found(p_job_id);
    return false;
end;
$$;

-- The job's task id (set now unless it had one). When another job of the same (project, type) is active
-- and already dispatched, this job is cancelled with a message naming it, and active_job_id says which.
create or replace function tam_claim_job_task(p_job_id uuid, p_task_id text)
returns table (task_id text, active_job_id uuid)
language plpgsql as $$
#variable_conflict use_column
declare
    v_job tam_job_queue;
    v_active tam_job_queue;
begin
    v_job := tam_job_or_not_found(p_job_id);
    if v_job.task_id is not null then
        return query select v_job.task_id, null::uuid;
        return;
    end if;
    perform tam_lock_job_type(v_job.project_id, v_job.job_type);
    select * into v_active from tam_job_queue q
     where q.project_id = v_job.project_id and tam_job_type_key(q.job_type) = tam_job_type_key(v_job.job_type)
       and q.id <> p_job_id and q.status in ('pending', 'running') and q.task_id is not null
     order by q.created_at limit 1;
    if v_active.id is not null then
        update tam_job_queue q
           set status = 'cancelled', message = tam_active_job_message(v_active), finished_at = now(), updated_at = now()
         where q.id = p_job_id and q.status in ('pending', 'running');
        return query select null::text, v_active.id;
        return;
    end if;
    update tam_job_queue q set task_id = p_task_id, updated_at = now()
     where q.id = p_job_id and q.task_id is null;
    return query select q.task_id, null::uuid from tam_job_queue q where q.id = p_job_id;
end;
$$;

-- The broker refused the message for p_task_id: give the task id back unless an attempt started under it.
create or replace function tam_unclaim_job_task(p_job_id uuid, p_task_id text) returns void
language plpgsql as $$
begin
    update tam_job_queue set task_id = null, updated_at = now()
     where id = p_job_id and task_id = p_task_id and attempts = 0 and status in ('pending', 'running');
    if not found then
        perform tam_job_or_not_found(p_job_id);
    end if;
end;
$$;

-- Insert a job unless one of its type is active for the project; then return that one (no row: inserted).
create or replace function tam_add_job_exclusive(p_id uuid, p_project_id uuid, p_job_type text)
returns setof tam_job_queue
language plpgsql as $$
declare
    v_active tam_job_queue;
begin
    perform tam_lock_job_type(p_project_id, p_job_type);
    select * into v_active from tam_job_queue q
     where q.project_id = p_project_id and tam_job_type_key(q.job_type) = tam_job_type_key(p_job_type)
       and q.status in ('pending', 'running')
     order by q.created_at limit 1;
    if v_active.id is not null then
        return next v_active;
        return;
    end if;
    insert into tam_job_queue (id, project_id, job_type) values (p_id, p_project_id, p_job_type);
end;
$$;

-- A verdict is written once: a company that is no longer pending keeps the verdict it has (written by
-- another job, or by an earlier attempt of this one).
create or replace function tam_record_qualifications(p_rows jsonb) returns integer
language plpgsql as $$
declare
    v_updated integer;
begin
    update tam_companies t
       set qualification_status = r.status, qualification_reason = r.reason, qualified_at = r.at,
           updated_at = now()
      from jsonb_to_recordset(p_rows) as r(company_id uuid, status text, reason text, at timestamptz)
     where t.id = r.company_id and t.qualification_status = 'pending';
    get diagnostics v_updated = row_count;
    return v_updated;
end;
$$;
