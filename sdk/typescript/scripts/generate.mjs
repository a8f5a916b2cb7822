// Regenerate src/gen from ../../protos: `npm run generate` (or `node scripts/generate.mjs OUT_DIR`, which writes
// OUT_DIR/src/gen; the staleness test does that into a temporary directory and compares).
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? here);
const buf = join(here, "node_modules", ".bin", "buf");
execFileSync(buf, ["generate", resolve(here, "..", ".."), "--template", join(here, "buf.gen.yaml"), "--output", out,
  ...(out === here ? ["--clean"] : [])], { cwd: here, stdio: "inherit" });
