-- tam schema (design section 3). Applied by `supabase db push` and by `tam migrate`.
-- Every statement is idempotent so a partly applied file can be re-run.

create table if not exists tam_projects (
    id uuid primary key default gen_random_uuid(),
    name text not null,
    icp text not null default '',
    target_titles text[] not null default '{}',
    target_seniorities text[] not null default '{}',
    countries text[] not null default '{}',
    employee_range text,
    max_contacts_per_company integer not null default 3 check (max_contacts_per_company >= 0),
    created_at timestamptz not null default now()
);

create table if not exists tam_companies (
    id uuid primary key default gen_random_uuid(),
    project_id uuid not null references tam_projects (id) on delete cascade,
    name text not null,
    domain text not null check (domain <> '' and domain = lower(domain)),
    description text,
    country text,
    employee_range text,
    linkedin_url text,
    source text not null default 'import'
        check (source in ('import', 'discolike', 'discolike_refine', 'sandbox')),
    similarity double precision,
    qualification_status text not null default 'pending'
        check (qualification_status in ('pending', 'qualified', 'disqualified', 'error')),
    qualification_reason text,
    qualified_at timestamptz,
    contacts_searched_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tam_companies_project_domain_key unique (project_id, domain)
);

-- qualify: pending companies of a project; findContacts: qualified and never searched.
create index if not exists tam_companies_project_status_idx
    on tam_companies (project_id, qualification_status, created_at);
create index if not exists tam_companies_needing_contacts_idx
    on tam_companies (project_id, created_at)
    where qualification_status = 'qualified' and contacts_searched_at is null;

create table if not exists tam_contacts (
    id uuid primary key default gen_random_uuid(),
    project_id uuid not null references tam_projects (id) on delete cascade,
    company_id uuid not null references tam_companies (id) on delete cascade,
    full_name text not null,
    first_name text,
    last_name text,
    title text,
    linkedin_url text,
    email text,
    email_status text check (email_status in ('verified', 'unverified', 'not_found')),
    provider_person_id text,
    linkedin_active boolean,
    linkedin_checked_at timestamptz,
    linkedin_detail text,
    created_at timestamptz not null default now(),
    -- Same rule as tam.domain.model.person_key: one row per person at a company.
    person_key text generated always as (
        case
            when coalesce(linkedin_url, '') <> '' then 'li:' || rtrim(lower(linkedin_url), '/')
            when coalesce(provider_person_id, '') <> '' then 'pid:' || provider_person_id
            else 'name:' || btrim(regexp_replace(lower(full_name), '\s+', ' ', 'g'))
        end
    ) stored
);

create unique index if not exists tam_contacts_company_person_key
    on tam_contacts (company_id, person_key);
create unique index if not exists tam_contacts_project_linkedin_key
    on tam_contacts (project_id, lower(linkedin_url)) where linkedin_url is not null;
create index if not exists tam_contacts_project_idx on tam_contacts (project_id, created_at);
-- checkLinkedin: contacts with a URL that was never checked.
create index if not exists tam_contacts_unchecked_idx
    on tam_contacts (project_id, created_at)
    where linkedin_url is not null and linkedin_checked_at is null;

create table if not exists tam_job_queue (
    id uuid primary key default gen_random_uuid(),
    project_id uuid not null references tam_projects (id) on delete cascade,
    -- The API accepts both spellings, so a frontend may store either.
    job_type text not null check (job_type in (
        'sourceCompanies', 'qualify', 'findContacts', 'checkLinkedin', 'refineDiscolike',
        'source_companies', 'find_contacts', 'check_linkedin', 'refine_discolike'
    )),
    status text not null default 'pending'
        check (status in ('pending', 'running', 'completed', 'failed', 'cancelled')),
    progress integer not null default 0 check (progress between 0 and 100),
    items_total integer not null default 0 check (items_total >= 0),
    items_done integer not null default 0 check (items_done >= 0),
    items_failed integer not null default 0 check (items_failed >= 0),
    message text,
    error text,
    task_id text,
    attempts integer not null default 0 check (attempts >= 0),
    usage jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    heartbeat_at timestamptz,
    updated_at timestamptz not null default now()
);

create index if not exists tam_job_queue_project_idx on tam_job_queue (project_id, created_at desc);
create index if not exists tam_job_queue_active_idx on tam_job_queue (status) where status in ('pending', 'running');

-- Keeps updated_at true for writes that do not set it (the frontend, SQL consoles).
create or replace function tam_touch_updated_at() returns trigger
language plpgsql as $$
begin
    if new.updated_at is not distinct from old.updated_at then
        new.updated_at := now();
    end if;
    return new;
end;
$$;

drop trigger if exists tam_companies_touch on tam_companies;
create trigger tam_companies_touch before update on tam_companies
    for each row execute function tam_touch_updated_at();
drop trigger if exists tam_job_queue_touch on tam_job_queue;
create trigger tam_job_queue_touch before update on tam_job_queue
    for each row execute function tam_touch_updated_at();
