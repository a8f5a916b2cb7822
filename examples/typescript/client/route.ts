// Calling the mesh from TypeScript: route tasks to any agent of a type through the router.
//   node examples/typescript/dist/client/route.js ROUTER_HOST:PORT [NAMESPACE] [AGENT_TYPE]
// With SUTRADHAR_TLS_CERT_FILE, SUTRADHAR_TLS_KEY_FILE and SUTRADHAR_TLS_CA_FILE set it presents that certificate
// (mutual TLS; the router must present the router's SPIFFE ID), else it speaks plaintext to a development mesh.
// Prints one JSON object: a routed result, an application failure, a stream's events, and the error of a type no
// agent serves (the SutradharError's gRPC code and Sutradhar name).
import { Credentials, Partial, Progress, Result, RouterClient, SutradharError } from "@sutradhar/sdk";

const [address = "127.0.0.1:50052", namespace = "default", agentType = "echo"] = process.argv.slice(2);
const { SUTRADHAR_TLS_CERT_FILE: certFile, SUTRADHAR_TLS_KEY_FILE: keyFile, SUTRADHAR_TLS_CA_FILE: caFile } = process.env;
const credentials = certFile && keyFile && caFile ? Credentials.mtls({ certFile, keyFile, caFile }) : Credentials.insecure();
const router = new RouterClient(address, { credentials, timeoutMs: 10_000 });

function plain(result: Result): object {
  return { success: result.success, data: result.data, error: result.error ?? null, metadata: result.metadata };
}

try {
  const ok = await router.execute(agentType, { text: "from typescript", n: 42 }, { namespace, type: "say" });
  const failed = await router.execute(agentType, { fail: "NOPE" }, { namespace, maxAttempts: 1 });
  const events: object[] = [];
  for await (const event of router.stream(agentType, { text: "abcdef", chunk: 3 }, { namespace })) {
    if (event instanceof Progress) events.push({ progress: event.message, fraction: event.fraction });
    else if (event instanceof Partial) events.push({ partial: event.data });
    else events.push({ result: plain(event) });
  }
  let missing: object = {};
  try {
    await router.execute("no-such-type", {}, { namespace, timeoutMs: 2_000 });
  } catch (err) {
    if (!(err instanceof SutradharError)) throw err;
    missing = { code: err.code, codeName: err.codeName, errorName: err.errorName, message: err.message };
  }
  console.log(JSON.stringify({ ok: plain(ok), failed: plain(failed), events, missing }));
} finally {
  router.close();
}
