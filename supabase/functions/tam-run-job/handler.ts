// Forwards a tam_job_queue job to tam's `POST /api/tam/run` and answers at once; a tam worker runs it
// and writes progress to tam_job_queue, which the frontend already polls. No imports: fetch only.

export interface Env {
  get(name: string): string | undefined;
}

interface JobRef {
  jobId: string;
  jobType: string;
  projectId: string;
}

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
};
const FORWARD_TIMEOUT_MS = 15_000;

function reply(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...CORS, "Content-Type": "application/json" },
  });
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() ? value.trim() : undefined;
}

// The frontend sends {jobId} (older callers) or {jobId, jobType, projectId}; a missing type or
// project is read from the job row through Supabase's REST API.
async function resolveJob(body: Record<string, unknown>, env: Env): Promise<JobRef | Response> {
  const jobId = text(body.jobId) ?? text(body.job_id);
  if (!jobId) return reply(400, { error: "jobId is required" });
  const jobType = text(body.jobType) ?? text(body.job_type);
  const projectId = text(body.projectId) ?? text(body.project_id);
  if (jobType && projectId) return { jobId, jobType, projectId };

  const supabaseUrl = env.get("SUPABASE_URL");
  const serviceKey = env.get("SUPABASE_SERVICE_ROLE_KEY");
  if (!supabaseUrl || !serviceKey) {
    return reply(400, { error: "jobType and projectId are required (or set SUPABASE_URL to look the job up)" });
  }
  const url = `${supabaseUrl.replace(/\/+$/, "")}/rest/v1/tam_job_queue?id=eq.${encodeURIComponent(jobId)}` +
    "&select=id,job_type,project_id";
  const res = await fetch(url, {
    headers: { apikey: serviceKey, Authorization: `Bearer ${serviceKey}` },
    signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
  });
  if (!res.ok) return reply(502, { error: `could not read job ${jobId} from Supabase (HTTP ${res.status})` });
  const rows = await res.json() as Array<{ job_type: string; project_id: string }>;
  if (!rows.length) return reply(404, { error: `job ${jobId} not found` });
  return { jobId, jobType: jobType ?? rows[0].job_type, projectId: projectId ?? rows[0].project_id };
}

export async function handleRequest(req: Request, env: Env = Deno.env): Promise<Response> {
  if (req.method === "OPTIONS") return new Response("ok", { headers: CORS });
  if (req.method !== "POST") return reply(405, { error: "use POST" });

  const base = env.get("TAM_API_URL") ?? env.get("GTM_SYSTEM_URL");
  const apiKey = env.get("SERVICE_API_KEY");
  if (!base || !apiKey) {
    return reply(500, { error: "TAM_API_URL (or GTM_SYSTEM_URL) and SERVICE_API_KEY must be set" });
  }

  let body: Record<string, unknown>;
  try {
    const parsed = await req.json();
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
    body = parsed as Record<string, unknown>;
  } catch {
    return reply(400, { error: "the body must be a JSON object with jobId" });
  }

  try {
    const job = await resolveJob(body, env);
    if (job instanceof Response) return job;
    const res = await fetch(`${base.replace(/\/+$/, "")}/api/tam/run`, {
      method: "POST",
      headers: { "x-api-key": apiKey, "Content-Type": "application/json" },
      body: JSON.stringify(job),
      signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
    });
    // tam's answer goes back as is: {triggered, taskId}, or its error with its status (401, 404, 409, ...).
    const answer = await res.text();
    let payload: unknown;
    try {
      payload = JSON.parse(answer);
    } catch {
      payload = { error: `tam answered HTTP ${res.status}` };
    }
    return reply(res.status, payload);
  } catch (err) {
    const name = err instanceof Error ? err.name : "Error";
    return reply(502, { error: `could not reach tam at TAM_API_URL (${name})` });
  }
}
