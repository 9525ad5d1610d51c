// Calls the edge function's handler as Supabase would, with the body given as the first argument,
// and prints `{status, body}` as one JSON line.
import { handleRequest } from "../../supabase/functions/tam-run-job/handler.ts";

const req = new Request("http://edge.local/functions/v1/tam-run-job", {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: Deno.args[0],
});
const res = await handleRequest(req);
console.log(JSON.stringify({ status: res.status, body: await res.json() }));
