// Generates src/generated/openapi.ts from docs/openapi.yaml (the API's one description).
// `--check` regenerates in memory and fails when the committed file differs (CI's drift check).
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const spec = new URL("../../../docs/openapi.yaml", import.meta.url);
const out = new URL("../src/generated/openapi.ts", import.meta.url);
const header =
  "// Generated from docs/openapi.yaml by scripts/generate.mjs (openapi-typescript): do not edit.\n" +
  "// Regenerate with `npm run generate`; CI fails when this file and the spec disagree.\n\n";

const ast = await openapiTS(spec, { alphabetize: false, exportType: true, defaultNonNullable: false });
const text = header + astToString(ast);

if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = await readFile(out, "utf8");
  } catch {
    // Missing: reported as drift below.
  }
  if (committed !== text) {
    console.error(
      `drift: ${fileURLToPath(out)} does not match docs/openapi.yaml; run \`npm run generate\` in clients/typescript and commit it`,
    );
    process.exit(1);
  }
  console.log("generated types match docs/openapi.yaml");
} else {
  await writeFile(out, text);
  console.log(`wrote ${fileURLToPath(out)}`);
}
