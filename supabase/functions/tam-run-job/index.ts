// Supabase Edge Function `tam-run-job`: the frontend invokes it with a job of tam_job_queue; it hands
// the job to tam's API and returns at once (every job type runs in a tam worker).
import { handleRequest } from "./handler.ts";

Deno.serve((req) => handleRequest(req));
