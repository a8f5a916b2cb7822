// The committed generated code matches the protos (run `npm run generate` when this fails).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.set(relative(dir, path), readFileSync(path, "utf8"));
    }
  };
  walk(dir);
  return out;
}

test("the committed src/gen is what `npm run generate` produces from protos/", () => {
  const out = mkdtempSync(join(tmpdir(), "sutradhar-ts-gen-"));
  try {
    execFileSync(process.execPath, [join(root, "scripts", "generate.mjs"), out], { stdio: "pipe" });
    const fresh = files(join(out, "src", "gen"));
    const committed = files(join(root, "src", "gen"));
    const missing = [...fresh.keys()].filter((name) => !committed.has(name));
    const extra = [...committed.keys()].filter((name) => !fresh.has(name));
    const stale = [...fresh.keys()].filter((name) => committed.has(name) && committed.get(name) !== fresh.get(name));
    assert.ok(fresh.size > 0, "generation produced nothing");
    assert.deepEqual({ missing, extra, stale }, { missing: [], extra: [], stale: [] },
      "generated code is stale: run `npm run generate` in sdk/typescript");
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
