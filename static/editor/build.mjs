// Bundle each src/ entry and its npm dependencies into ../vendor/<name>.js (one minified ES
// module, no imports) plus ../vendor/<name>.js.LICENSES.txt: editor.js (CodeMirror) and
// chart.js (Chart.js, the Management page's usage chart).
// Usage: cd static/editor && npm ci && npm run build
import { readFileSync, readdirSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "vendor");
const pkg = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));

function installedVersion(name) {
  return JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
}

// Refuse to build from versions other than the pinned ones (e.g. a stale node_modules).
for (const [name, want] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
  const have = installedVersion(name);
  if (have !== want) {
    console.error(`node_modules has ${name}@${have}, package.json pins ${want}; run npm ci`);
    process.exit(1);
  }
}

// Each bundle names the pinned packages it is built from in its banner.
const BUNDLES = [
  { name: "editor", title: "editor", packages: (n) => n !== "chart.js" },
  { name: "chart", title: "usage chart", packages: (n) => n === "chart.js" },
];

for (const bundle of BUNDLES) await build(bundle);

async function build({ name: bundleName, title, packages }) {
const outFile = join(outDir, `${bundleName}.js`);
const pinned = Object.entries(pkg.dependencies)
  .filter(([name]) => packages(name))
  .map(([name, version]) => `${name}@${version}`)
  .join(", ");
const banner =
  `/*! Scriptbox ${title} bundle (built by static/editor/build.mjs; do not edit).\n` +
  ` * Packages: ${pinned}; bundled with esbuild@${pkg.devDependencies.esbuild}.\n` +
  ` * Licenses: ${bundleName}.js.LICENSES.txt */`;

mkdirSync(outDir, { recursive: true });
const result = await esbuild.build({
  entryPoints: [join(here, "src", `${bundleName}.js`)],
  outfile: outFile,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  legalComments: "none",
  banner: { js: banner },
  metafile: true,
  logLevel: "warning",
});

// Which packages ended up in the bundle: esbuild's inputs that contributed output bytes.
const [output] = Object.values(result.metafile.outputs).filter((o) => o.entryPoint);
const bundled = new Map();
for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
  if (!bytesInOutput) continue;
  const parts = relative(here, join(here, input)).split(sep);
  const i = parts.lastIndexOf("node_modules");
  if (i < 0) continue;
  const name = parts[i + 1].startsWith("@") ? `${parts[i + 1]}/${parts[i + 2]}` : parts[i + 1];
  const dir = join(here, ...parts.slice(0, i + 1), ...name.split("/"));
  bundled.set(name, dir);
}

const sections = [];
for (const [name, dir] of [...bundled].sort(([a], [b]) => a.localeCompare(b))) {
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const licenseFile = readdirSync(dir).find((f) => /^(licen[sc]e|copying)(\.(md|txt))?$/i.test(f));
  if (!licenseFile) {
    console.error(`${name}: no license file found in ${dir}`);
    process.exit(1);
  }
  const text = readFileSync(join(dir, licenseFile), "utf8").trim();
  sections.push(`${name}@${meta.version} (${meta.license})\n${"-".repeat(72)}\n${text}\n`);
}
const header =
  `Licenses of the third-party packages bundled into ${bundleName}.js\n` +
  `(${bundled.size} packages, collected from node_modules by static/editor/build.mjs)\n`;
writeFileSync(`${outFile}.LICENSES.txt`, [header, ...sections].join(`\n${"=".repeat(72)}\n\n`));

console.log(
  `wrote ${relative(process.cwd(), outFile)} (${readFileSync(outFile).length} bytes, ` +
    `${bundled.size} packages) and ${relative(process.cwd(), outFile)}.LICENSES.txt`,
);
}
