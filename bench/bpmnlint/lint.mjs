// Lints BPMN files with bpmnlint's rules and prints, per file, the ids each rule reports:
//   node lint.mjs RULES FILE...   (RULES: comma-separated bpmnlint rule names)
// Prints one JSON object {file: {rule: [ids]}}; a rule that throws reports the id null.
import { readFile } from 'node:fs/promises';
import { linterFor } from './linter.mjs';

const [ list, ...files ] = process.argv.slice(2);
const rules = list.split(',');
const lint = linterFor(rules);
const out = {};
for (const file of files) {
  const results = await lint(await readFile(file, 'utf8'));
  out[file] = Object.fromEntries(rules.map(rule => [ rule, (results[rule] || []).map(r => r.id ?? null) ]));
}
console.log(JSON.stringify(out));
