-- The tam schema for SQLite: the same tables and rules as supabase/migrations, in SQLite's types.
-- ids are UUID text, lists and usage are JSON text, timestamps are UTC ISO 8601 text (sortable).
-- person_key is computed by the adapter with tam.domain.model.person_key (SQLite's lower() is ASCII only).

create table if not exists tam_projects (
    id text primary key,
    name text not null,
    icp text not null default '',
    target_titles text not null default '[]',
    target_seniorities text not null default '[]',
    countries text not null default '[]',
    employee_range text,
    max_contacts_per_company integer not null default 3 check (max_contacts_per_company >= 0),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00')
);

create table if not exists tam_companies (
    id text primary key,
    project_id text not null references tam_projects (id) on delete cascade,
    name text not null,
    domain text not null check (domain <> '' and domain = lower(domain)),
    description text,
    country text,
    employee_range text,
    linkedin_url text,
    source text not null default 'import'
        check (source in ('import', 'discolike', 'discolike_refine', 'sandbox')),
    similarity real,
    qualification_status text not null default 'pending'
        check (qualification_status in ('pending', 'qualified', 'disqualified', 'error')),
    qualification_reason text,
    qualified_at text,
    contacts_searched_at text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00'),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00'),
    unique (project_id, domain)
);

create index if not exists tam_companies_project_status_idx
    on tam_companies (project_id, qualification_status, created_at);

create table if not exists tam_contacts (
    id text primary key,
    project_id text not null references tam_projects (id) on delete cascade,
    company_id text not null references tam_companies (id) on delete cascade,
    full_name text not null,
    first_name text,
    last_name text,
    title text,
    linkedin_url text,
    email text,
    email_status text check (email_status in ('verified', 'unverified', 'not_found')),
    provider_person_id text,
    linkedin_active integer check (linkedin_active in (0, 1)),
    linkedin_checked_at text,
    linkedin_detail text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00'),
    person_key text not null
);

create unique index if not exists tam_contacts_company_person_key on tam_contacts (company_id, person_key);
create unique index if not exists tam_contacts_project_linkedin_key
    on tam_contacts (project_id, lower(linkedin_url)) where linkedin_url is not null;
create index if not exists tam_contacts_project_idx on tam_contacts (project_id, created_at);
create index if not exists tam_contacts_unchecked_idx
    on tam_contacts (project_id, created_at) where linkedin_url is not null and linkedin_checked_at is null;

create table if not exists tam_job_queue (
    id text primary key,
    project_id text not null references tam_projects (id) on delete cascade,
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
    usage text not null default '{}',
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00'),
    started_at text,
    finished_at text,
    heartbeat_at text,
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00')
);

create index if not exists tam_job_queue_project_idx on tam_job_queue (project_id, created_at);
