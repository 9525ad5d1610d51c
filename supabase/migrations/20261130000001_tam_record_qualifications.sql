-- Many qualification verdicts in one statement (the qualify step writes them once per progress flush).
-- p_rows: [{"company_id": uuid, "status": text, "reason": text, "at": timestamptz}, ...]; companies that
-- no longer exist are skipped. Returns how many companies were updated.
create or replace function tam_record_qualifications(p_rows jsonb) returns integer
language plpgsql as $$
declare
    v_updated integer;
begin
    update tam_companies t
       set qualification_status = r.status, qualification_reason = r.reason, qualified_at = r.at,
           updated_at = now()
      from jsonb_to_recordset(p_rows) as r(company_id uuid, status text, reason text, at timestamptz)
     where t.id = r.company_id;
    get diagnostics v_updated = row_count;
    return v_updated;
end;
$$;
