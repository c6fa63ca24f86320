// Copies the pinned Swagger UI build into ../vendor/ for the API reference page (/api/docs).
// Run after `npm ci`; the copied files are committed so serving Scriptbox needs no Node.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "node_modules", "swagger-ui-dist");
const vendor = join(here, "..", "vendor");
mkdirSync(vendor, { recursive: true });
for (const [from, to] of [
  ["swagger-ui-bundle.js", "swagger-ui-bundle.js"],
  ["swagger-ui-bundle.js.LICENSE.txt", "swagger-ui-bundle.js.LICENSES.txt"],
  ["swagger-ui.css", "swagger-ui.css"],
  ["LICENSE", "swagger-ui.LICENSE.txt"],
]) {
  copyFileSync(join(dist, from), join(vendor, to));
}
