-- Budgets and Message Batches.
-- max_cost_usd: the most a job may spend, in US dollars (null: no cap); its calls are admitted only
--   while their worst case fits under it.
-- batch_id: the Message Batch a qualify job is waiting on, stored right after the batch is created, so
--   a retried or redelivered job polls that batch instead of creating a second one.
alter table tam_job_queue add column if not exists max_cost_usd double precision
    check (max_cost_usd is null or max_cost_usd >= 0);
alter table tam_job_queue add column if not exists batch_id text;
