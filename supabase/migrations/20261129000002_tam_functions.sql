-- Atomic operations for the storage adapters. The Supabase adapter calls them through PostgREST RPC
-- (POST /rest/v1/rpc/<name>); the PostgreSQL adapter calls the same functions, so one implementation
-- is tested. A missing row raises SQLSTATE P0002 (no_data_found), which PostgREST answers with 404.

create or replace function tam_add_companies(p_project_id uuid, p_companies jsonb)
returns table (inserted integer, skipped integer)
language plpgsql as $$
declare
    v_given integer := jsonb_array_length(p_companies);
    v_inserted integer;
begin
    if not exists (select 1 from tam_projects where id = p_project_id) then
        raise exception using errcode = 'P0002', message = format('project %s not found', p_project_id);
    end if;
    with added as (
        insert into tam_companies (
            project_id, name, domain, source, description, country, employee_range, linkedin_url, similarity
        )
        select p_project_id, c.name, c.domain, coalesce(c.source, 'import'), c.description, c.country,
               c.employee_range, c.linkedin_url, c.similarity
        from rows from (jsonb_to_recordset(p_companies) as (
            name text, domain text, source text, description text, country text, employee_range text,
            linkedin_url text, similarity double precision
        )) with ordinality as c
        order by c.ordinality
        on conflict (project_id, domain) do nothing
        returning 1
    )
    select count(*) into v_inserted from added;
    return query select v_inserted, v_given - v_inserted;
end;
$$;

create or replace function tam_record_company_contacts(
    p_company_id uuid, p_contacts jsonb, p_searched_at timestamptz
) returns integer
language plpgsql as $$
declare
    v_inserted integer;
begin
    -- Lock the company first: two attempts recording the same company serialise here.
    perform 1 from tam_companies where id = p_company_id for update;
    if not found then
        raise exception using errcode = 'P0002', message = format('company %s not found', p_company_id);
    end if;
    with added as (
        insert into tam_contacts (
            id, project_id, company_id, full_name, first_name, last_name, title, linkedin_url, email,
            email_status, provider_person_id, linkedin_active, linkedin_checked_at, linkedin_detail
        )
        select coalesce(c.id, gen_random_uuid()), c.project_id, p_company_id, c.full_name, c.first_name,
               c.last_name, c.title, c.linkedin_url, c.email, c.email_status, c.provider_person_id,
               c.linkedin_active, c.linkedin_checked_at, c.linkedin_detail
        from rows from (jsonb_to_recordset(p_contacts) as (
            id uuid, project_id uuid, full_name text, first_name text, last_name text, title text,
            linkedin_url text, email text, email_status text, provider_person_id text, linkedin_active boolean,
            linkedin_checked_at timestamptz, linkedin_detail text
        )) with ordinality as c
        order by c.ordinality
        on conflict do nothing
        returning 1
    )
    select count(*) into v_inserted from added;
    update tam_companies
       set contacts_searched_at = p_searched_at, updated_at = now()
     where id = p_company_id and contacts_searched_at is null;
    return v_inserted;
end;
$$;

create or replace function tam_record_linkedin(p_checks jsonb, p_at timestamptz) returns integer
language plpgsql as $$
declare
    v_given integer := jsonb_array_length(p_checks);
    v_updated integer;
    v_missing uuid;
begin
    select c.contact_id into v_missing
      from jsonb_to_recordset(p_checks) as c(contact_id uuid)
     where not exists (select 1 from tam_contacts t where t.id = c.contact_id)
     limit 1;
    if v_missing is not null then
        raise exception using errcode = 'P0002', message = format('contact %s not found', v_missing);
    end if;
    update tam_contacts t
       set linkedin_active = c.active, linkedin_detail = c.detail, linkedin_checked_at = p_at
      from jsonb_to_recordset(p_checks) as c(contact_id uuid, active boolean, detail text)
     where t.id = c.contact_id;
    get diagnostics v_updated = row_count;
    return v_updated;
end;
$$;

create or replace function tam_count_companies_by_status(p_project_id uuid)
returns table (qualification_status text, n bigint)
language sql stable as $$
    select c.qualification_status, count(*) from tam_companies c
     where c.project_id = p_project_id group by c.qualification_status;
$$;

create or replace function tam_contact_stats(p_project_id uuid)
returns table (total bigint, with_email bigint, linkedin_active bigint, linkedin_inactive bigint)
language sql stable as $$
    select count(*),
           count(*) filter (where coalesce(c.email, '') <> ''),
           count(*) filter (where c.linkedin_active is true),
           count(*) filter (where c.linkedin_active is false)
      from tam_contacts c where c.project_id = p_project_id;
$$;

-- --- jobs ------------------------------------------------------------------------------------

create or replace function tam_claim_job_task(p_job_id uuid, p_task_id text) returns text
language plpgsql as $$
declare
    v_task_id text;
begin
    update tam_job_queue
       set task_id = p_task_id, updated_at = now()
     where id = p_job_id and task_id is null
    returning task_id into v_task_id;
    if v_task_id is null then
        select task_id into v_task_id from tam_job_queue where id = p_job_id;
        if not found then
            raise exception using errcode = 'P0002', message = format('job %s not found', p_job_id);
        end if;
    end if;
    return v_task_id;
end;
$$;

-- A job row as it is now (when an update left it alone), or P0002 (PostgREST: 404) when it does not exist.
create or replace function tam_job_or_not_found(p_job_id uuid) returns tam_job_queue
language plpgsql as $$
declare
    v_job tam_job_queue;
begin
    select * into v_job from tam_job_queue where id = p_job_id;
    if not found then
        raise exception using errcode = 'P0002', message = format('job %s not found', p_job_id);
    end if;
    return v_job;
end;
$$;

create or replace function tam_start_job(p_job_id uuid, p_at timestamptz) returns tam_job_queue
language plpgsql as $$
declare
    v_job tam_job_queue;
begin
    update tam_job_queue
       set status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, p_at),
           heartbeat_at = p_at, updated_at = p_at
     where id = p_job_id and status in ('pending', 'running')
    returning * into v_job;
    if v_job.id is null then  -- finished already, or no such job
        v_job := tam_job_or_not_found(p_job_id);
    end if;
    return v_job;
end;
$$;

create or replace function tam_save_job_progress(
    p_job_id uuid, p_progress integer, p_items_total integer, p_items_done integer, p_items_failed integer,
    p_message text, p_usage jsonb, p_at timestamptz
) returns void
language plpgsql as $$
begin
    update tam_job_queue
       set progress = greatest(progress, least(greatest(p_progress, 0), 100)),
           items_total = p_items_total, items_done = p_items_done, items_failed = p_items_failed,
           message = p_message, usage = coalesce(p_usage, '{}'::jsonb), heartbeat_at = p_at, updated_at = p_at
     where id = p_job_id;
    if not found then
        raise exception using errcode = 'P0002', message = format('job %s not found', p_job_id);
    end if;
end;
$$;

create or replace function tam_finish_job(
    p_job_id uuid, p_status text, p_message text, p_error text, p_at timestamptz
) returns tam_job_queue
language plpgsql as $$
declare
    v_job tam_job_queue;
begin
    update tam_job_queue
       set status = p_status,
           progress = case when p_status = 'completed' then 100 else progress end,
           message = coalesce(p_message, message), error = p_error, finished_at = p_at, updated_at = p_at
     where id = p_job_id and status in ('pending', 'running')
    returning * into v_job;
    if v_job.id is null then  -- finished already, or no such job
        v_job := tam_job_or_not_found(p_job_id);
    end if;
    return v_job;
end;
$$;

create or replace function tam_cancel_job(p_job_id uuid, p_at timestamptz) returns tam_job_queue
language sql as $$
    select tam_finish_job(p_job_id, 'cancelled', null, null, p_at);
$$;
