-- Budgets and Message Batches (the same columns as supabase/migrations/20261202000500_tam_batches_costs.sql).
alter table tam_job_queue add column max_cost_usd real check (max_cost_usd is null or max_cost_usd >= 0);
alter table tam_job_queue add column batch_id text;
